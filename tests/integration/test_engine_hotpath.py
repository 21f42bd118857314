"""The runner's hot path in-process: progress throttling and a dropped database connection."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Engine, text

from agents.engine import Runner
from workers import client
from workers.db import get_engine


def in_process_runner(events: list[dict[str, Any]]) -> Runner:
    from workers.runtime import chat_model

    return Runner(
        get_engine(),
        hostname="hotpath@test",
        max_deliveries=3,
        publish=lambda _workflow, event: events.append(event),
        model_factory=chat_model,
    )


def _row(engine: Engine, task_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(
            connection.execute(
                text(
                    "SELECT status, progress_percentage, intermediate_results, delivery_count,"
                    " (SELECT count(*) FROM agent_states WHERE task_id = t.id) AS states"
                    " FROM agent_tasks t WHERE id = :id"
                ),
                {"id": task_id},
            )
            .mappings()
            .one()
        )


def test_a_fast_task_reports_only_its_completion(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    events: list[dict[str, Any]] = []
    task_id = client.submit("echo", {"message": "quick"})
    assert in_process_runner(events).execute(task_id).action == "done"
    row = _row(engine, task_id)
    assert row["status"] == "completed" and row["states"] == 5
    assert row["intermediate_results"] is None, "no progress write for phases under 0.25 s"
    assert [e["status"] for e in events] == ["completed"]


def test_a_slow_task_reports_progress_at_each_phase(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    events: list[dict[str, Any]] = []
    task_id = client.submit("echo", {"message": "slow", "phase_seconds": 0.3})
    assert in_process_runner(events).execute(task_id).action == "done"
    row = _row(engine, task_id)
    assert row["intermediate_results"] == {"last_phase": "result"}
    assert [(e["status"], e["progress"]) for e in events] == [
        ("running", 20),
        ("running", 40),
        ("running", 60),
        ("running", 80),
        ("completed", 100),
    ]


def test_a_dropped_connection_retries_the_delivery_then_recovers(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    runner = in_process_runner([])
    warm = client.submit("echo", {})
    assert runner.execute(warm).action == "done"
    with engine.connect() as admin:
        admin.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                " AND application_name <> 'pytest-admin'"
            )
        )
    task_id = client.submit("echo", {})
    decision = runner.execute(task_id)
    assert decision.action == "retry" and decision.reason == "database unavailable"
    before = _row(engine, task_id)
    assert (before["status"], before["delivery_count"], before["states"]) == ("queued", 0, 0)
    assert runner.execute(task_id).action == "done"
    row = _row(engine, task_id)
    assert row["status"] == "completed" and row["states"] == 5 and row["delivery_count"] == 1


def _states(engine: Engine, workflow_id: uuid.UUID) -> list[tuple[str, str, int]]:
    with engine.connect() as connection:
        return [
            (str(task), state, int(number))
            for task, state, number in connection.execute(
                text(
                    "SELECT task_id, state_type, sequence_number FROM agent_states"
                    " WHERE workflow_id = :id ORDER BY sequence_number"
                ),
                {"id": workflow_id},
            )
        ]


def test_a_standalone_task_numbers_its_states_and_yields_numbers_a_child_took(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    runner = in_process_runner([])
    alone = client.submit("echo", {"message": "alone"})
    assert runner.execute(alone).action == "done"
    assert [n for _, _, n in _states(engine, alone)] == [1, 2, 3, 4, 5]

    parent = client.submit("echo", {"message": "parent"})
    child = client.submit("echo", {"message": "child"}, parent_task_id=parent)
    assert runner.execute(child).action == "done"  # the child numbers 1-5 in the parent's workflow
    assert runner.execute(parent).action == "done"  # every number the parent wanted is taken
    states = _states(engine, parent)
    assert [n for _, _, n in states] == list(range(1, 11)), "one number per state"
    assert [task for task, _, _ in states] == [str(child)] * 5 + [str(parent)] * 5
    assert states[-1][1] == "context", "the completion's own state was written again, not lost"
    assert _row(engine, parent)["status"] == "completed"
