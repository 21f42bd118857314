"""The migrations build the whole schema from nothing, match the models, and go both ways."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
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


def test_0008_renumbers_states_numbered_twice_and_widens_metric_values(
    empty_database_url: str,
) -> None:
    """Before 0008 two states of one workflow could share a number (different phases);
    the upgrade renumbers them in order, keeps the rest, and takes 1,000 s in ms."""
    migrate.upgrade(empty_database_url, "0007")
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        agent = connection.execute(text("SELECT id FROM ai_agents LIMIT 1")).scalar_one()
        shared, clean = connection.execute(
            text("SELECT gen_random_uuid(), gen_random_uuid()")
        ).one()
        for workflow, numbers in ((shared, [1, 2, 2, 3]), (clean, [1, 2])):
            for index, number in enumerate(numbers):
                task = connection.execute(
                    text("INSERT INTO agent_tasks (agent_id, task_name, task_type, input_data,"
                         " workflow_id) VALUES (:agent, 'x', 'echo', '{}', :workflow)"
                         " RETURNING id"),
                    {"agent": agent, "workflow": workflow},
                ).scalar_one()  # fmt: skip
                connection.execute(
                    text("INSERT INTO agent_states (agent_id, task_id, workflow_id, state_type,"
                         " state_data, sequence_number, created_at) VALUES (:agent, :task,"
                         " :workflow, :phase, '{}', :number, now() + :index * interval '1 s')"),
                    {"agent": agent, "task": task, "workflow": workflow, "number": number,
                     "phase": ("situation", "problem")[index % 2], "index": index},
                )  # fmt: skip
    migrate.upgrade(empty_database_url)
    with engine.begin() as connection:
        numbers = connection.execute(
            text("SELECT workflow_id, array_agg(sequence_number ORDER BY created_at)"
                 " FROM agent_states GROUP BY workflow_id")
        ).all()  # fmt: skip
        assert dict(numbers) == {shared: [1, 2, 3, 4], clean: [1, 2]}
        connection.execute(
            text("INSERT INTO agent_metrics (agent_id, metric_type, metric_value)"
                 " VALUES (:agent, 'phase_time', 1005000.5)"),
            {"agent": agent},
        )  # fmt: skip
    engine.dispose()
    try:
        migrate.downgrade(empty_database_url, "0007")
    except RuntimeError as exc:
        assert "1 agent_metrics value(s) do not fit numeric(10, 4)" in str(exc)
    else:
        raise AssertionError("downgraded over a metric value that does not fit")


def test_a_downgrade_below_0002_refuses_assignment_ids_the_old_column_cannot_hold(
    empty_database_url: str,
) -> None:
    """It ended in a traceback of about 95 lines (StringDataRightTruncation)."""
    migrate.upgrade(empty_database_url, "0002")
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.execute(
            text(
                "WITH i AS (INSERT INTO lms_integrations (platform_name, institution_name,"
                " base_url, auth_type) VALUES ('canvas', 'School', 'https://lms.test', 'token')"
                " RETURNING id), c AS (INSERT INTO lms_courses (lms_integration_id,"
                " external_course_id, title) SELECT id, '1', 'Algebra' FROM i RETURNING id)"
                " INSERT INTO lms_assignments (lms_course_id, external_assignment_id, title)"
                " SELECT id, 'https://lms.test/api/lti/courses/1/line_items/' || repeat('7', 120),"
                " 'Quiz' FROM c"
            )
        )
    engine.dispose()
    with pytest.raises(RuntimeError, match="1 lms_assignments external_assignment_id value"):
        migrate.downgrade(empty_database_url, "0001")
    assert migrate.current_revision(empty_database_url) == "0002"


def test_drift_is_described_in_words(empty_database_url: str) -> None:
    """``toolbox db check`` printed Alembic's tuples: ``('add_index', Index('ix_...',
    Column('task_id', UUID(), table=<agent_metrics>)))``."""
    migrate.upgrade(empty_database_url)
    engine = create_engine(empty_database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.execute(text("DROP INDEX ix_agent_metrics_task_id"))
        connection.execute(text("ALTER TABLE agent_metrics ADD COLUMN extra int"))
        connection.execute(text("ALTER TABLE agent_tasks ALTER COLUMN task_name TYPE text"))
    engine.dispose()
    assert sorted(migrate.schema_drift(empty_database_url)) == [
        "column agent_metrics.extra in the database but not in the models",
        "column agent_tasks.task_name: type is TEXT in the database, VARCHAR(200) in the models",
        "index ix_agent_metrics_task_id on agent_metrics (task_id) missing from the database",
    ]
