"""One SQLAlchemy engine per process.

Celery's prefork pool forks children after the parent may have touched the
database; a pooled connection shared across a fork corrupts both sides.  The
engine remembers the pid that made it and is rebuilt (the inherited pool is
dropped without closing the parent's sockets) in any other process.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from models.errors import ConfigurationError
from workers.settings import ENV_PREFIX, get_settings

_lock = threading.Lock()
_state: dict[str, object] = {}


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
        _state.update(engine=engine, pid=os.getpid(), factory=sessionmaker(engine))
        return engine


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
