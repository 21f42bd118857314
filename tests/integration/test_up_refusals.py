"""What ``toolbox up`` refuses in one line, before it migrates or starts anything."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import create_engine, pool, text

from tests.integration.test_cli_errors import one_error_line, up_that_should_not_start


def table_count(database_url: str) -> int:
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            query = text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
            count: int = connection.execute(query).scalar_one()
            return count
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    ("processes", "expected"),
    [
        ("agents,agents", "error: toolbox up: --processes: names agents more than once; "
         "each runs once per toolbox up (more agent processes: TOOLBOX_CONCURRENCY)"),
        ("", "error: toolbox up: --processes: names no process; choose from agents, lms, "
         "passback, maintenance, beat, flower"),
        (" , ", "error: toolbox up: --processes: names no process; choose from agents, lms, "
         "passback, maintenance, beat, flower"),
        ("agents,worker", "error: toolbox up: --processes: unknown process 'worker'; known: "
         "agents, lms, passback, maintenance, beat, flower"),
        ("agents,", "error: toolbox up: --processes: empty name after 'agents' in 'agents,'; "
         "remove the extra comma"),
        ("agents, ,lms", "error: toolbox up: --processes: empty name between 'agents' and "
         "'lms' in 'agents, ,lms'; remove the extra comma"),
        (",beat", "error: toolbox up: --processes: empty name before 'beat' in ',beat'; "
         "remove the extra comma"),
    ],
)  # fmt: skip
def test_a_process_list_it_cannot_run(
    processes: str, expected: str, empty_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {"TOOLBOX_DATABASE_URL": empty_database_url, "TOOLBOX_REDIS_URL": redis_url,
           "TOOLBOX_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    result = up_that_should_not_start(env, "--processes", processes)
    assert one_error_line(result) == expected
    assert result.stdout == ""  # not even the banner
    assert table_count(empty_database_url) == 0  # checked before migrating


def test_flower_without_a_login_outside_development(
    empty_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    env = {"TOOLBOX_ENV": "test", "TOOLBOX_DATABASE_URL": empty_database_url,
           "TOOLBOX_REDIS_URL": redis_url, "TOOLBOX_DATA_DIR": str(tmp_path / "data")}  # fmt: skip
    result = up_that_should_not_start(env)  # every process, Flower among them
    assert one_error_line(result) == (
        "error: TOOLBOX_FLOWER_BASIC_AUTH is required to start Flower outside development"
    )
    assert result.stdout == ""
    assert table_count(empty_database_url) == 0
