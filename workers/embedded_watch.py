"""``toolbox up`` starts its embedded servers again when one dies under the running stack.

Before, a killed or crashed embedded PostgreSQL or Redis stayed down until
the next ``toolbox`` or ``celery`` command on the same folder joined it, and
the stack's workers retried meanwhile while submitted tasks waited.  Now
``toolbox up`` watches the servers it embeds (a server given by URL is the
operator's) and joins a dead one again through that same path
(``Servers.rejoin``): PostgreSQL comes back in its data folder, Redis on the
socket path the processes were given, and the lists of users stay right.

The check is cheap: every ``WATCH_SECONDS``, whether the server's pid still
names the process seen running, by its start mark (``workers.lifelines``).
A start that fails (PostgreSQL waiting for the backends of a killed
postmaster to exit, say) is tried again after a pause that doubles up to
``MAX_RETRY_SECONDS``.  A start that is refused (``ConfigurationError``:
Redis could only come back on another socket, the data folder became
unusable) ends the watch, and the stack stops as it does when a process
ends.  Nothing starts once the stack's stop began (``halt``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from models.errors import ConfigurationError
from workers.embedded import Servers
from workers.lifelines import alive, start_mark

log = logging.getLogger(__name__)

WATCH_SECONDS = 2.0
MAX_RETRY_SECONDS = 60.0
LABELS = {"postgresql": "PostgreSQL", "redis": "Redis"}


class Refused(NamedTuple):
    """A server that died and cannot be started again: which (``Redis``), and why."""

    server: str
    problem: str

    def __str__(self) -> str:
        return f"embedded {self.server} stopped; not started again: {self.problem}"


@dataclass
class _Watched:
    name: str
    pid: int = 0
    mark: str | None = None
    failures: int = 0
    retry_at: float = 0.0
    """When a start that failed may be tried again (``clock`` time)."""


class EmbeddedWatch:
    """The embedded servers of ``servers``, started again when they die (see above)."""

    def __init__(
        self,
        servers: Servers,
        *,
        interval: float = WATCH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._servers = servers
        self._interval = interval
        self._clock = clock
        self._halted = threading.Event()
        self._watched = [_Watched(name) for name in servers.embedded]
        for server in self._watched:
            self._seen(server)

    def check(self) -> Refused | None:
        """One round: start again each server that died, once its next try is due.

        Returns a start's refusal (watch no more then), else None.
        """
        for server in self._watched:
            if self._halted.is_set():
                return None
            if server.pid and alive(server.pid, server.mark):
                continue
            if self._clock() < server.retry_at:
                continue
            refusal = self._start(server)
            if refusal is not None:
                return refusal
        return None

    def halt(self) -> None:
        """Start nothing from now on (the stack's stop began); a start under way completes."""
        self._halted.set()

    @contextlib.contextmanager
    def watching(self, on_refused: Callable[[Refused], None]) -> Iterator[None]:
        """Check every ``interval`` seconds in a thread until the block ends.

        ``on_refused`` hears, from that thread, of a refused start.
        The block's end waits for a start under way, which holds the locks the
        exit's leaving of the servers takes.
        """
        thread = None
        if self._watched:
            thread = threading.Thread(
                target=self._run, args=(on_refused,), name="toolbox-embedded-watch", daemon=True
            )
            thread.start()
        try:
            yield
        finally:
            self.halt()
            if thread is not None:
                thread.join()

    def _run(self, on_refused: Callable[[Refused], None]) -> None:
        while not self._halted.wait(self._interval):
            refusal = self.check()
            if refusal is not None:
                on_refused(refusal)
                return

    def _start(self, server: _Watched) -> Refused | None:
        label = LABELS[server.name]
        try:
            where = self._servers.rejoin(server.name)
        except ConfigurationError as exc:
            return Refused(label, exc.message)
        except Exception as exc:  # anything else may pass: tried again later
            server.failures += 1
            pause = min(self._interval * 2**server.failures, MAX_RETRY_SECONDS)
            server.retry_at = self._clock() + pause
            log.warning(
                "embedded %s stopped; starting it again failed (%s: %s); next try in %gs",
                label, type(exc).__name__, exc, pause,
            )  # fmt: skip
            return None
        server.failures, server.retry_at = 0, 0.0
        self._seen(server)
        log.warning("embedded %s stopped; started again at %s", label, where)
        return None

    def _seen(self, server: _Watched) -> None:
        """Remember the process running as ``server`` now (pid 0: none)."""
        server.pid = self._servers.server_pid(server.name)
        try:
            server.mark = start_mark(server.pid) if server.pid else None
        except PermissionError:  # another user's: its pid alone names it
            server.mark = None
