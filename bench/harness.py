"""Shared plumbing for the benchmarks: servers, a scratch database, worker processes.

Servers come from ``TOOLBOX_TEST_DATABASE_URL`` / ``TOOLBOX_TEST_REDIS_URL``
(an admin PostgreSQL URL and a Redis database the benchmark flushes) or, when
unset, embedded servers in a temporary folder, exactly like the tests.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import redis
from sqlalchemy import create_engine, make_url, pool, text

from workers import migrate
from workers.db import reset_engine
from workers.embedded import resolve_servers
from workers.redis import client_url
from workers.settings import Settings, get_settings


@contextlib.contextmanager
def servers() -> Iterator[tuple[str, str]]:
    """(admin database URL, redis URL)."""
    db = os.environ.get("TOOLBOX_TEST_DATABASE_URL")
    broker = os.environ.get("TOOLBOX_TEST_REDIS_URL")
    if db and broker:
        admin = make_url(Settings(database_url=db).database_url or "").set(database="postgres")
        yield admin.render_as_string(hide_password=False), broker
        return
    with tempfile.TemporaryDirectory() as folder:
        Path(folder).chmod(0o755)
        embedded = resolve_servers(Settings(data_dir=Path(folder)), export=False)
        admin = make_url(embedded.database_url).set(database="postgres")
        try:
            yield admin.render_as_string(hide_password=False), embedded.redis_url
        finally:
            embedded.close()


@contextlib.contextmanager
def scratch_stack(admin_url: str, redis_url: str) -> Iterator[dict[str, str]]:
    """A fresh migrated database, a flushed Redis, and the environment pointing at them."""
    name = f"toolbox_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, poolclass=pool.NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    migrate.upgrade(url)
    redis.Redis.from_url(client_url(redis_url)).flushdb()
    env = {"TOOLBOX_DATABASE_URL": url, "TOOLBOX_REDIS_URL": redis_url, "TOOLBOX_ENV": "test",
           "TOOLBOX_LOG_LEVEL": "WARNING"}  # fmt: skip
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    get_settings.cache_clear()
    reset_engine()
    try:
        yield env
    finally:
        reset_engine()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        get_settings.cache_clear()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextlib.contextmanager
def worker(
    app: str, queues: str, env: dict[str, str], concurrency: int = 2
) -> Iterator[subprocess.Popen[bytes]]:
    """A ``celery worker`` of ``app`` on ``queues``, ready; yields its process."""
    log = tempfile.NamedTemporaryFile("w+", suffix=".log", delete=False)
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", app, "worker", "-Q", queues, "-c", str(concurrency),
         "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip", "--without-mingle",
         "--prefetch-multiplier", "1", "-l", "WARNING"],
        env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        wait_until(_ready, timeout=60)
        yield process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def arguments(
    module: str, doc: str, options: dict[str, tuple[float, str, str]]
) -> argparse.Namespace:
    """The command line of ``python -m module``: ``options`` maps ``--name`` to its default
    (an int or a float, which is also its type), metavar and help; ``--help`` shows the
    defaults."""
    parser = argparse.ArgumentParser(
        prog=f"python -m {module}",
        description=doc.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, (default, metavar, meaning) in options.items():
        parser.add_argument(
            name, type=type(default), default=default, metavar=metavar, help=meaning
        )
    return parser.parse_args()


def _ready() -> bool:
    from workers.app import app

    return bool(app.control.ping(timeout=0.5))


def wait_until(predicate: Callable[[], bool], timeout: float, interval: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"not done within {timeout}s")
        time.sleep(interval)


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]
