"""Upgrades at once (two ``toolbox migrate``, one next to ``alembic upgrade``) wait for
each other: both succeed, the schema ends at head, the default agents are there once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text

from tests.workers import wait_for
from workers import migrate
from workers.seed import DEFAULT_AGENTS

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
AT_ONCE = 3
"""Processes started together: more of them make a missing lock fail more surely."""


def start(url: str, *argv: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBOX_")}
    env["TOOLBOX_DATABASE_URL"] = url
    return subprocess.Popen(
        [str(BIN / argv[0]), *argv[1:]], env=env, cwd=ROOT, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip


def finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=120)
    return process.returncode, stdout, stderr


def column(url: str, query: str) -> list[Any]:
    """The first column of ``query``'s rows on ``url``."""
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        found = list(connection.execute(text(query)).scalars())
    engine.dispose()
    return found


def waiting_on_locks(url: str) -> int:
    """How many sessions on ``url``'s database wait for a lock (a table's or advisory)."""
    query = (
        "SELECT count(*) FROM pg_stat_activity"
        " WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    return int(column(url, query)[0])


def agents(url: str) -> list[str]:
    return column(url, "SELECT agent_type FROM ai_agents ORDER BY 1")


def test_migrations_at_once_on_an_empty_database_both_succeed(empty_database_url: str) -> None:
    runs = [start(empty_database_url, "toolbox", "migrate") for _ in range(AT_ONCE)]
    for returncode, stdout, stderr in map(finish, runs):
        assert (returncode, stderr) == (0, ""), stderr[-2000:]
        assert stdout.strip() == f"schema at {migrate.head_revision()}"
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    assert migrate.schema_drift(empty_database_url) == []
    assert agents(empty_database_url) == sorted(spec["agent_type"] for spec in DEFAULT_AGENTS)


@pytest.mark.parametrize("other", [("toolbox", "migrate"), ("alembic", "upgrade", "head")])
def test_upgrades_at_once_from_an_older_revision_both_succeed(
    empty_database_url: str, other: tuple[str, ...]
) -> None:
    migrate.upgrade(empty_database_url, "0003")
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    with engine.begin() as gate:  # held until all wait: they start at the same revision
        gate.execute(text("LOCK TABLE alembic_version IN ACCESS EXCLUSIVE MODE"))
        runs = [start(empty_database_url, "toolbox", "migrate")]
        runs += [start(empty_database_url, *other) for _ in range(AT_ONCE - 1)]
        wait_for(lambda: waiting_on_locks(empty_database_url) == AT_ONCE, 60, 0.1)
    engine.dispose()
    for returncode, _, stderr in map(finish, runs):
        assert returncode == 0, stderr[-2000:]
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
    assert migrate.schema_drift(empty_database_url) == []
    assert len(agents(empty_database_url)) == len(DEFAULT_AGENTS)


def test_a_submit_after_a_bare_alembic_upgrade_says_to_run_toolbox_migrate(
    empty_database_url: str, redis_url: str
) -> None:
    """``alembic upgrade head`` makes the schema but seeds no agent: "known: " and nothing
    after it left a new user guessing."""
    returncode, _, stderr = finish(start(empty_database_url, "alembic", "upgrade", "head"))
    assert returncode == 0, stderr
    assert agents(empty_database_url) == []
    env = {"TOOLBOX_DATABASE_URL": empty_database_url, "TOOLBOX_REDIS_URL": redis_url}
    advice = "unknown agent 'echo'; no agents are registered: run toolbox migrate"
    submitted = subprocess.run(
        [str(BIN / "toolbox"), "task", "submit", "echo"], env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert (submitted.returncode, submitted.stderr) == (2, f"error: {advice}\n")
    listed = subprocess.run(
        [str(BIN / "toolbox"), "task", "list", "--agent", "echo"], env={**os.environ, **env},
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert listed.returncode == 2
    assert listed.stderr == f"error: toolbox task list: --agent: {advice}\n"


def test_schema_commands_with_a_database_url_alone_start_no_embedded_redis(
    empty_database_url: str, tmp_path: Path
) -> None:
    """They never use Redis, yet each started an embedded one in ``./.toolbox`` of the
    folder it ran from (``TOOLBOX_REDIS_URL`` unset), leaving that folder behind."""
    ini = str(ROOT / "alembic.ini")
    commands = [("toolbox", "migrate"), ("toolbox", "db", "check")]
    commands += [("alembic", "-c", ini, "upgrade", "head"), ("alembic", "-c", ini, "check")]
    for argv in commands:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBOX_")}
        env["TOOLBOX_DATABASE_URL"] = empty_database_url
        done = subprocess.run(
            [str(BIN / argv[0]), *argv[1:]], env=env, cwd=tmp_path, capture_output=True,
            text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, (argv, done.stderr[-2000:])
        assert list(tmp_path.iterdir()) == [], argv
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()
