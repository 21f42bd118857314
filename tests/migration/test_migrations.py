"""The migrations build the whole schema from nothing, match the models, and go both ways."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import create_engine, inspect, pool, text

from workers import migrate

PLAN = Path(__file__).resolve().parents[2] / "docs" / "database-integration-plan.md"


def plan_tables() -> dict[str, list[str]]:
    """Table -> column names, parsed from the plan's CREATE TABLE statements."""
    source = PLAN.read_text()
    tables: dict[str, list[str]] = {}
    for name, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\);", source, re.S):
        columns = []
        for line in body.splitlines():
            line = line.split("--")[0].strip()
            match = re.match(
                r"(\w+)\s+(UUID|VARCHAR|TEXT|INTEGER|BIGINT|BOOLEAN|DECIMAL|JSONB|"
                r"TIMESTAMPTZ|DATE|INET)",
                line,
            )
            if match and match.group(1) not in {"PRIMARY", "UNIQUE"}:
                columns.append(match.group(1))
        tables[name] = columns
    return tables


def test_upgrade_builds_every_table_and_column_of_the_plan(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    inspector = inspect(engine)
    existing = set(inspector.get_table_names())
    expected = plan_tables()
    assert len(expected) >= 31
    for table, columns in expected.items():
        assert table in existing, table
        have = {column["name"] for column in inspector.get_columns(table)}
        assert set(columns) <= have, (table, set(columns) - have)
    assert {"lms_enrollments", "lms_user_links", "periodic_job_runs"} <= existing
    engine.dispose()


def test_no_drift_between_models_and_migrations(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    assert migrate.schema_drift(empty_database_url) == []
    assert migrate.current_revision(empty_database_url) == migrate.head_revision()


def test_downgrade_to_base_and_up_again(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    migrate.downgrade(empty_database_url, "base")
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    with engine.connect() as connection:
        functions = connection.execute(
            text("SELECT count(*) FROM pg_proc WHERE proname = 'set_updated_at'")
        ).scalar_one()
    assert functions == 0
    migrate.upgrade(empty_database_url)
    assert migrate.schema_drift(empty_database_url) == []
    engine.dispose()


def test_seeding_is_idempotent_and_keeps_operator_changes(empty_database_url: str) -> None:
    migrate.upgrade(empty_database_url)
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE ai_agents SET timeout_seconds = 42 WHERE agent_type = 'quiz'")
        )
    migrate.upgrade(empty_database_url)
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT agent_type, timeout_seconds, retry_count, priority, max_concurrent_tasks"
                " FROM ai_agents ORDER BY agent_type"
            )
        ).all()
    kinds = {row.agent_type for row in rows}
    assert {"supervisor", "content", "quiz", "terrain", "script", "review"} <= kinds
    assert len(rows) == len(kinds)
    assert {row.agent_type: row.timeout_seconds for row in rows}["quiz"] == 42
    assert all(row.retry_count >= 0 and row.max_concurrent_tasks > 0 for row in rows)
    engine.dispose()


def test_alembic_cli_configuration_finds_the_migrations() -> None:
    ini = Path(__file__).resolve().parents[2] / "alembic.ini"
    assert "script_location = %(here)s/migrations" in ini.read_text()
    assert migrate.head_revision() is not None
