"""Alembic environment: the models' metadata, the URL from settings unless given."""

from __future__ import annotations

from logging.config import fileConfig
from typing import Any

from alembic import context
from sqlalchemy import Connection, create_engine, pool, text

import models
from migrations import SCHEMA_LOCK_KEY

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = models.Base.metadata
_embedded: list[Any] = []
"""The embedded servers' handles, kept for the life of the process (dropping one may stop it)."""


def _url() -> str:
    """The configured URL (``workers.migrate`` passes one), else the settings'.

    The ``alembic`` command line with no ``TOOLBOX_DATABASE_URL`` outside
    production joins (or starts) the embedded PostgreSQL of ``TOOLBOX_DATA_DIR``,
    as ``toolbox migrate`` does (no Redis: migrations never use it).
    """
    url = config.get_main_option("sqlalchemy.url")
    if url:
        return url
    from workers.settings import get_settings

    if get_settings().database_url is None:
        from workers.embedded import resolve_servers

        # in production: an error that the URLs are required
        _embedded.append(resolve_servers(redis=False))
    from workers.db import database_url

    return database_url()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connectable = config.attributes.get("connection")
    if connectable is None:
        engine = create_engine(_url(), poolclass=pool.NullPool)
        with engine.connect() as connection:
            _run(connection)
        engine.dispose()
    else:
        _run(connectable)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        compare_server_default=True,
    )
    with context.begin_transaction():
        # before Alembic reads the revision: a concurrent upgrade waits, then finds it done
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
