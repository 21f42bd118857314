"""Retention on real PostgreSQL: each rule, its batches, and two runs at once."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from models.errors import ConfigurationError
from tests.integration.ops_support import count, insert, twice_at_once, user
from workers.jobs.retention import apply_retention, retention_settings
from workers.settings import RetentionPolicy, get_settings

DAY = 86400
JSON_COLUMNS = ("input_data", "output_data", "error_details", "context_data")


def _task(connection: Connection, agent: uuid.UUID, days: float | None, **extra: Any) -> uuid.UUID:
    values: dict[str, Any] = {
        "agent_id": agent,
        "task_type": "echo",
        "task_name": "echo task",
        "input_data": {"message": "Ada's essay on volcanoes"},
        "output_data": {"echo": "Ada's essay on volcanoes"},
        "error_details": {"type": "X", "retryable": False, "traceback": "secret frames"},
        "status": "completed",
        "completed_at_ago": None if days is None else days * DAY,
        **extra,
    }
    json = tuple(column for column in JSON_COLUMNS if column in values)
    task: uuid.UUID = insert(connection, "agent_tasks", json=json, **values)
    insert(
        connection, "agent_states", json=("state_data",), task_id=task, agent_id=agent,
        workflow_id=task, state_type="situation", state_data={"output": "Ada"}, sequence_number=1,
    )  # fmt: skip
    insert(
        connection, "agent_metrics", agent_id=agent, task_id=task, metric_type="success",
        metric_value=1,
    )  # fmt: skip
    return task


def seed(engine: Engine, copies: int = 1) -> dict[str, Any]:
    ids: dict[str, Any] = {"purged": [], "deleted": [], "kept": []}
    with engine.begin() as connection:
        agent = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()
        learner = user(connection)
        for _ in range(copies):
            for days in (200, 60, 1):
                insert(
                    connection, "usage_analytics", event_type="view", event_category="lesson",
                    event_name="open", user_id=learner, ip_address="10.1.2.3",
                    user_agent="Mozilla/5.0", recorded_at_ago=days * DAY,
                )  # fmt: skip
            for status, days in (("resolved", 40), ("new", 200), ("new", 40), ("ignored", 2)):
                insert(
                    connection, "error_logs", error_type="E", error_message="m",
                    error_hash=uuid.uuid4().hex, status=status, last_seen_ago=days * DAY,
                )  # fmt: skip
            for days in (20, 1):
                insert(
                    connection, "system_health_checks", service_name="toolbox-worker",
                    status="healthy", checked_at_ago=days * DAY,
                )  # fmt: skip
                insert(
                    connection, "periodic_job_runs", job_name=f"job-{uuid.uuid4().hex[:6]}",
                    slot_start_ago=days * DAY,
                )  # fmt: skip
            ids["purged"].append(_task(connection, agent, 40))
            parent = _task(connection, agent, 400)
            child = _task(connection, agent, 400, parent_task_id=parent, status="failed")
            insert(
                connection, "error_logs", error_type="E", error_message="child failed",
                error_hash=uuid.uuid4().hex, task_id=child,
            )  # fmt: skip
            ids["deleted"] += [parent, child]
            ids["kept"].append(_task(connection, agent, 2))
            ids["kept"].append(_task(connection, agent, None, status="running"))
    return ids


def snapshot(engine: Engine) -> dict[str, int]:
    queries = {
        "usage": "SELECT count(*) FROM usage_analytics",
        "usage_personal": "SELECT count(*) FROM usage_analytics WHERE user_id IS NOT NULL"
        " OR ip_address IS NOT NULL OR user_agent IS NOT NULL",
        "errors": "SELECT count(*) FROM error_logs",
        "health": "SELECT count(*) FROM system_health_checks",
        "runs": "SELECT count(*) FROM periodic_job_runs",
        "tasks": "SELECT count(*) FROM agent_tasks",
        "purged": "SELECT count(*) FROM agent_tasks WHERE input_data ? '_retention'",
        "states_purged": "SELECT count(*) FROM agent_states WHERE state_data ? '_retention'",
        "metrics": "SELECT count(*) FROM agent_metrics",
    }
    return {name: count(engine, sql) for name, sql in queries.items()}


def test_each_rule_applies_at_its_age(engine: Engine) -> None:
    ids = seed(engine)
    changed = apply_retention(engine, RetentionPolicy())
    assert changed == {
        "usage_anonymised": 2,
        "usage_deleted": 1,
        "errors_resolved_deleted": 1,
        "errors_deleted": 1,
        "health_checks_deleted": 1,
        "job_runs_deleted": 1,
        "task_payloads_purged": 3,  # the 40-day task, and the 400-day pair before they go
        "task_rows_deleted": 2,
    }
    after = snapshot(engine)
    assert after["usage"] == 2 and after["usage_personal"] == 1
    assert after["errors"] == 3 and after["health"] == 1 and after["runs"] == 1
    assert after["tasks"] == 3 and after["metrics"] == 3
    with engine.connect() as connection:
        purged = connection.execute(
            text("SELECT input_data, output_data, error_details FROM agent_tasks WHERE id = :id"),
            {"id": ids["purged"][0]},
        ).one()
        assert set(purged.input_data) == {"_retention"} and set(purged.output_data) == {
            "_retention"
        }
        assert purged.error_details == {"type": "X", "retryable": False}
        kept = connection.execute(
            text(
                "SELECT count(*) FROM agent_tasks WHERE id = ANY(:ids) AND input_data ? 'message'"
            ),
            {"ids": ids["kept"]},
        ).scalar_one()
        assert kept == 2
        orphaned = connection.execute(
            text("SELECT count(*) FROM error_logs WHERE error_message = 'child failed'"
                 " AND task_id IS NULL")
        ).scalar_one()  # fmt: skip
        assert orphaned == 1, "an error log outlives the task it pointed at"
    assert apply_retention(engine, RetentionPolicy()) == dict.fromkeys(changed, 0)


def test_two_runs_at_once_change_each_row_once(engine: Engine) -> None:
    seed(engine, copies=12)
    settings = RetentionPolicy(batch_size=3)
    results = twice_at_once(lambda: apply_retention(engine, settings))
    totals = {rule: results[0][rule] + results[1][rule] for rule in results[0]}
    assert totals == {
        "usage_anonymised": 24,
        "usage_deleted": 12,
        "errors_resolved_deleted": 12,
        "errors_deleted": 12,
        "health_checks_deleted": 12,
        "job_runs_deleted": 12,
        "task_payloads_purged": 36,
        "task_rows_deleted": 24,
    }
    after = snapshot(engine)
    assert after == {
        "usage": 24, "usage_personal": 12, "errors": 36, "health": 12, "runs": 12,
        "tasks": 36, "purged": 12, "states_purged": 12, "metrics": 36,
    }  # fmt: skip


def test_ages_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBOX_RETENTION_USAGE_DAYS", "90")
    get_settings.cache_clear()
    assert retention_settings().usage_days == 90
    monkeypatch.setenv("TOOLBOX_RETENTION_HEALTH_CHECKS_DAYS", "-1")
    get_settings.cache_clear()
    with pytest.raises(ConfigurationError, match="TOOLBOX_RETENTION_HEALTH_CHECKS_DAYS"):
        retention_settings()
    monkeypatch.delenv("TOOLBOX_RETENTION_HEALTH_CHECKS_DAYS")
    get_settings.cache_clear()


def test_a_time_budget_leaves_the_rest_for_the_next_run(engine: Engine) -> None:
    seed(engine, copies=3)
    hurried = apply_retention(engine, RetentionPolicy(batch_size=1, step_seconds=1e-6))
    assert hurried["usage_deleted"] == 1 and max(hurried.values()) == 1
    assert apply_retention(engine, RetentionPolicy())["usage_deleted"] == 2


def test_a_workflow_keeps_its_bookkeeping_and_is_purged_only_once_it_is_over(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """The purge set context_data to NULL: a completed workflow then showed ``running
    (planning)`` without its artifacts, and ``workflow cancel`` "cancelled" it.  A task
    finished long ago in a workflow still going on (its root, an artifact the review
    will read) kept its payload no longer either."""
    from workers import workflows

    with engine.begin() as connection:
        agents = {
            row.agent_type: row.id
            for row in connection.execute(text("SELECT agent_type, id FROM ai_agents"))
        }
        root = uuid.uuid4()
        state = {"status": "completed", "stage": "done", "round": 0, "content_id": "c-1"}
        _task(connection, agents["supervisor"], 40, id=root, workflow_id=root,
              task_type="supervisor", context_data={"workflow": state})  # fmt: skip
        artifact = {"role": "artifact", "round": 0}
        child = _task(connection, agents["content"], 40, workflow_id=root, parent_task_id=root,
                      task_type="content", context_data=artifact)  # fmt: skip
        review = _task(connection, agents["review"], None, workflow_id=root, parent_task_id=root,
                       task_type="review", status="running")  # fmt: skip
    policy = RetentionPolicy()
    assert apply_retention(engine, policy)["task_payloads_purged"] == 0
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE agent_tasks SET status = 'completed', completed_at = now() - interval"
                 " '40 days' WHERE id = :id"), {"id": review},
        )  # fmt: skip
    assert apply_retention(engine, policy)["task_payloads_purged"] == 3
    view = workflows.get(root)
    assert (view.status, view.stage, view.artifacts) == (
        "completed",
        "done",
        {"content_id": "c-1"},
    )
    with engine.connect() as connection:
        kept = connection.execute(
            text("SELECT context_data, input_data ? '_retention' FROM agent_tasks WHERE id = :id"),
            {"id": child},
        ).one()
    assert tuple(kept) == (artifact, True)
