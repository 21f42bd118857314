"""One SQLAlchemy engine per process.

Celery's prefork pool forks children after the parent may have touched the
database; a pooled connection shared across a fork corrupts both sides.  The
engine remembers the pid that made it and is rebuilt (the inherited pool is
dropped without closing the parent's sockets) in any other process.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from models.errors import ConfigurationError
from workers.settings import ENV_PREFIX, get_settings

log = logging.getLogger(__name__)
_lock = threading.Lock()
_state: dict[str, object] = {}
SCHEMA_REVISION = "0008"
"""The Alembic revision this code needs (the head; a unit test keeps them equal), read
without loading Alembic: every process compares it with the database's once."""
SCHEMA_WARNING = "schema_warning"
"""Marks that warning's log record: a command says it once, as it ends (``workers.cli``)."""


def database_url() -> str:
    url = get_settings().database_url
    if url is None:
        raise ConfigurationError(
            f"{ENV_PREFIX}DATABASE_URL is not set: set it, or call "
            "workers.embedded.resolve_servers() first to join (or start) the embedded servers "
            f"of {ENV_PREFIX}DATA_DIR, as the toolbox commands do"
        )
    return url


def make_engine(url: str, *, pool_size: int = 5) -> Engine:
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=5,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"application_name": "toolbox-worker"},
    )


def get_engine() -> Engine:
    with _lock:
        engine = _state.get("engine")
        if engine is not None and _state.get("pid") == os.getpid():
            assert isinstance(engine, Engine)
            return engine
        if isinstance(engine, Engine):
            engine.dispose(close=False)
        engine = make_engine(database_url())
        event.listen(engine, "first_connect", _warn_if_schema_differs, once=True)
        _state.update(engine=engine, pid=os.getpid(), factory=sessionmaker(engine))
        return engine


def read_revision(dbapi_connection: Any) -> str | None:
    """The database's Alembic revision on a raw psycopg connection (None: no schema);
    the connection is left out of any transaction."""
    try:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SELECT version_num FROM alembic_version")
            row = cursor.fetchone()
    except psycopg.errors.UndefinedTable:
        row = None
    finally:
        if not dbapi_connection.autocommit:
            dbapi_connection.rollback()
    return None if row is None else str(row[0])


def _warn_if_schema_differs(dbapi_connection: Any, _record: Any) -> None:
    """One warning per process whose database is at another revision than the code.

    A database with no schema is left to the errors of the commands and tasks
    (which name ``toolbox migrate``): ``toolbox up`` and ``migrate`` meet it first.
    """
    try:
        revision = read_revision(dbapi_connection)
    except psycopg.Error:
        return  # the caller's own statement will say what is wrong
    if revision is not None and revision != SCHEMA_REVISION:
        url = make_url(database_url())
        log.warning(
            "the database %s is at schema revision %s, this code needs %s: run `toolbox "
            "migrate`; until then tasks and commands may fail or write what the code does "
            "not expect", url.database, revision, SCHEMA_REVISION,
            extra={SCHEMA_WARNING: True},
        )  # fmt: skip


def session_factory() -> sessionmaker[Session]:
    get_engine()
    factory = _state["factory"]
    assert isinstance(factory, sessionmaker)
    return factory


@contextmanager
def transaction() -> Iterator[Session]:
    """A session in one transaction: committed on success, rolled back on error."""
    with session_factory().begin() as session:
        yield session


def reset_engine() -> None:
    """Forget the engine (settings changed, or a forked child starts)."""
    with _lock:
        engine = _state.pop("engine", None)
        if isinstance(engine, Engine):
            engine.dispose(close=_state.get("pid") == os.getpid())
        _state.clear()
