"""The hint a ``--wait`` gives when no worker will ever take the work it waits for.

A new user who submits with ``--wait`` before starting a worker would
otherwise watch nothing happen for the whole timeout.  After
``GRACE_SECONDS``, if the work has not started, one broadcast asks the
workers which queues they consume (``tasks.platform.probe_workers``); when
none consumes the agents queue, a ``warning:`` line on stderr says so and
how to start one.  The wait itself goes on unchanged: a worker started
meanwhile still picks the work up.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from workers.celeryconfig import AGENT_QUEUE
from workers.cli import lookup

GRACE_SECONDS = 5.0

Probe = Callable[[], dict[str, list[str]]]


def no_worker_message(noun: str, left: float) -> str:
    """The warning, with the seconds of the wait ``left`` (not the whole ``--timeout``)."""
    return (
        f"the {noun} has not started: no worker consumes the {AGENT_QUEUE} queue"
        f" (start one with: toolbox up); still waiting up to {max(left, 0):.0f}s more"
    )


def _default_probe() -> dict[str, list[str]]:
    from tasks.platform import probe_workers  # the Celery app, only when the hint is due

    return probe_workers()


@contextmanager
def hint_if_no_worker(
    started: Callable[[], bool],
    *,
    noun: str,
    timeout: float,
    quiet: bool = False,
    probe: Probe | None = None,
    grace: float = GRACE_SECONDS,
) -> Iterator[None]:
    """Around a wait: warn once if the work has not started after ``grace`` and no worker is up.

    ``started`` tells whether the work has begun (it runs in a helper
    thread).  ``quiet`` (the broker refused the submission, which has said
    so) or a failing probe gives no hint.
    """
    if quiet:
        yield
        return
    done = threading.Event()
    began = time.monotonic()

    def check() -> None:
        if done.wait(grace) or timeout <= grace or started():
            return
        try:
            workers = (probe or _default_probe)()
        except Exception:  # the broker's own error was reported at submit
            return
        if any(AGENT_QUEUE in queues for queues in workers.values()):
            return
        if not done.is_set() and not started():
            lookup.warn(no_worker_message(noun, timeout - (time.monotonic() - began)))

    watcher = threading.Thread(target=check, name="toolbox-idle-hint", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
