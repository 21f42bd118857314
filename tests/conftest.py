"""Real PostgreSQL and Redis for every test tier.

``TOOLBOX_TEST_DATABASE_URL`` (an admin URL: the tests create databases) and
``TOOLBOX_TEST_REDIS_URL`` (a Redis database the tests FLUSH) point at
servers; without them the session starts embedded ones in a temporary folder.
The schema is migrated once into a template database; each test that asks
for ``database_url`` gets a fresh copy of it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
from sqlalchemy import Engine, create_engine, make_url, pool, text
from sqlalchemy.orm import Session

from workers import migrate
from workers.db import reset_engine
from workers.embedded import resolve_servers
from workers.redis import client_url
from workers.settings import Settings, get_settings

pytest_plugins = ["tests.workers"]


@dataclass(frozen=True)
class TestServers:
    admin_url: str
    redis_url: str


def _admin(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")


def pytest_collection_finish(session: pytest.Session) -> None:
    """Refuse a collection that configured the Celery app: it started embedded servers.

    pytest reads every global of a test module while collecting; a Celery task
    imported at module level evaluates the app's configuration then, before any
    fixture has set the server URLs, and the app joins (or starts) embedded
    servers in the current folder and sends every later message there.
    """
    app = sys.modules.get("workers.app")
    if app is not None and getattr(app, "_embedded", None):
        raise pytest.UsageError(
            "collecting the tests configured the Celery app (and started embedded servers):"
            " import Celery tasks inside the tests that use them, not at module level"
        )


@contextlib.contextmanager
def server_folder() -> Iterator[Path]:
    """A folder for embedded servers' data, outside pytest's temporary tree.

    Run as root, pgserver runs PostgreSQL as its own user, which must be able
    to traverse every parent of the data folder.  pytest keeps
    ``/tmp/pytest-of-<user>`` at mode 0700 and resets it whenever another
    pytest run starts, so a data folder under ``tmp_path`` broke when two runs
    overlapped; ``/tmp`` itself (1777) and a 0755 folder in it do not change.
    """
    folder = Path(tempfile.mkdtemp(prefix="toolbox-test-"))
    folder.chmod(0o755)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def _data_dir_outside_the_checkout() -> Iterator[None]:
    """``TOOLBOX_DATA_DIR`` in a temporary folder for the whole run, unless the run sets it.

    Its default is ``.toolbox`` in the current folder: a test that reaches the
    settings without ``toolbox_env`` (a development key for an LMS secret, a
    Celery child's beat schedule) would otherwise leave one in the checkout.
    Tests that need their own folder still set it themselves.
    """
    if os.environ.get("TOOLBOX_DATA_DIR"):
        yield
        return
    with server_folder() as folder:
        os.environ["TOOLBOX_DATA_DIR"] = str(folder / "data")
        get_settings.cache_clear()
        try:
            yield
        finally:
            os.environ.pop("TOOLBOX_DATA_DIR", None)
            get_settings.cache_clear()


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A fresh folder to hold a test's own embedded servers (``server_folder``)."""
    with server_folder() as folder:
        yield folder


def _redis_database(url: str, worker: int) -> str:
    """The Redis database of pytest-xdist worker ``gwK``: number N - K of the URL's N,
    since each worker's tests flush theirs (one process, or ``gw0``: N itself)."""
    if worker == 0:
        return url
    parts = urlsplit(url)
    number = parts.path.strip("/") or "0"
    if parts.scheme not in ("redis", "rediss") or not number.isdigit() or int(number) < worker:
        raise pytest.UsageError(
            f"TOOLBOX_TEST_REDIS_URL: {worker + 1} test processes (-n) need a redis:// URL"
            f" whose database number is {worker} or more (worker gwK flushes that number"
            " minus K); give one, or run fewer processes (-n 0: one)"
        )
    return parts._replace(path=f"/{int(number) - worker}").geturl()


def pytest_configure(config: pytest.Config) -> None:
    """Refuse, before any test process starts, a Redis URL the -n workers cannot share."""
    processes = getattr(config.option, "numprocesses", None) or 0
    broker = os.environ.get("TOOLBOX_TEST_REDIS_URL")
    if broker and os.environ.get("TOOLBOX_TEST_DATABASE_URL") and processes > 1:
        _redis_database(broker, processes - 1)


@pytest.fixture(scope="session")
def servers() -> Iterator[TestServers]:
    db = os.environ.get("TOOLBOX_TEST_DATABASE_URL")
    broker = os.environ.get("TOOLBOX_TEST_REDIS_URL")
    if db and broker:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        broker = _redis_database(broker, int(worker.removeprefix("gw")))
    with contextlib.ExitStack() as stack:
        if not (db and broker):
            handles = resolve_servers(
                Settings(
                    data_dir=stack.enter_context(server_folder()),
                    database_url=db or None,
                    redis_url=broker or None,
                ),
                export=False,
            )
            stack.callback(handles.close)
            db, broker = handles.database_url, handles.broker_url
        admin = make_url(Settings(database_url=db).database_url or "").set(database="postgres")
        yield TestServers(admin.render_as_string(hide_password=False), broker)


@pytest.fixture(scope="session")
def template_database(servers: TestServers) -> Iterator[str]:
    name = f"toolbox_tpl_{uuid.uuid4().hex[:10]}"
    admin = _admin(servers.admin_url)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(servers.admin_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    yield name
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def database_url(servers: TestServers, template_database: str) -> Iterator[str]:
    """A fresh database migrated to head, dropped after the test."""
    name = f"toolbox_t_{uuid.uuid4().hex[:12]}"
    admin = _admin(servers.admin_url)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{template_database}"'))
    yield make_url(servers.admin_url).set(database=name).render_as_string(hide_password=False)
    reset_engine()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def empty_database_url(servers: TestServers) -> Iterator[str]:
    """A fresh database with no schema (for migration tests)."""
    name = f"toolbox_e_{uuid.uuid4().hex[:12]}"
    admin = _admin(servers.admin_url)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(servers.admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    yield engine
    engine.dispose()


@pytest.fixture
def session(engine: Engine) -> Iterator[Session]:
    with Session(engine) as session:
        yield session


@pytest.fixture
def redis_url(servers: TestServers) -> Iterator[str]:
    """The test Redis database, flushed before the test."""
    client = redis.Redis.from_url(client_url(servers.redis_url))
    client.flushdb()
    yield servers.redis_url
    client.close()


@pytest.fixture
def toolbox_env(
    monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    """Point settings (this process and child processes) at the test servers."""
    env = {
        "TOOLBOX_ENV": "test",
        "TOOLBOX_DATABASE_URL": database_url,
        "TOOLBOX_REDIS_URL": redis_url,
        "TOOLBOX_DATA_DIR": str(tmp_path / "data"),
        "TOOLBOX_LOG_JSON": "true",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    reset_engine()
    yield env
    reset_engine()
    get_settings.cache_clear()
