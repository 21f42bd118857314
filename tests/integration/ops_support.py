"""Helpers of the operations and platform job tests.

Rows are inserted with plain SQL; ``*_ago`` arguments are seconds before the
database's ``now()``, so tests do not depend on the clock of the test process.
"""

from __future__ import annotations

import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import URL, Connection, Engine, bindparam, create_engine, pool, text
from sqlalchemy.dialects.postgresql import JSONB

T = TypeVar("T")


def insert(connection: Connection, table: str, json: tuple[str, ...] = (), **values: Any) -> Any:
    """INSERT one row; values named ``*_ago`` become ``now() - seconds`` of that column."""
    columns, params, exprs = [], {}, []
    for name, value in values.items():
        if name.endswith("_ago"):
            column = name.removesuffix("_ago")
            exprs.append("NULL" if value is None else f"now() - make_interval(secs => :{name})")
        else:
            column = name
            exprs.append(f":{name}")
        columns.append(column)
        params[name] = value
    statement = text(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(exprs)}) RETURNING id"
    ).bindparams(*(bindparam(name, type_=JSONB) for name in json))
    return connection.execute(statement, params).scalar_one()


def user(connection: Connection, name: str | None = None) -> uuid.UUID:
    name = name or f"u{uuid.uuid4().hex[:10]}"
    result: uuid.UUID = insert(
        connection, "users", username=name, email=f"{name}@school.test", password_hash="x"
    )
    return result


def content(
    connection: Connection,
    *,
    subject: str = "science",
    grade: int = 5,
    difficulty: str = "medium",
    status: str = "ready",
) -> uuid.UUID:
    result: uuid.UUID = insert(
        connection,
        "educational_content",
        json=("content_data",),
        title=f"lesson {uuid.uuid4().hex[:6]}",
        subject=subject,
        grade_level=grade,
        environment_type="classroom",
        difficulty_level=difficulty,
        content_data={},
        status=status,
    )
    return result


def count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def terminate_sessions(engine: Engine, where: str = "TRUE", **params: Any) -> int:
    """``pg_terminate_backend`` on every other session of the test database matching ``where``."""
    with engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    f" WHERE datname = current_database() AND pid <> pg_backend_pid() AND {where}"
                ),
                params,
            ).scalar_one()
        )


def allow_connections(url: URL, allowed: bool) -> None:
    """``ALTER DATABASE ... ALLOW_CONNECTIONS`` on ``url``'s database, through the server's
    ``postgres`` database; cutting it off also ends the sessions it has."""
    name = url.database
    admin = create_engine(
        url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )
    try:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {allowed}'))
            if not allowed:
                ended = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"
                connection.execute(text(ended), {"n": name})
    finally:
        admin.dispose()


def twice_at_once(action: Callable[[], T]) -> list[T]:
    """Run ``action`` in two threads released together; return both results."""
    barrier = threading.Barrier(2)
    results: list[Any] = [None, None]
    errors: list[BaseException] = []

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = action()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    if errors:
        raise errors[0]
    return results


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def start_process(argv: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    """A server subprocess in its own session, output to ``log_path``."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop_process(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_until(predicate: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``predicate`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s")
