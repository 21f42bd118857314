"""The runner's hot path in-process: progress throttling and a dropped database connection."""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

from agents import hotpath, lifecycle
from agents.engine import Runner
from tests.integration.ops_support import terminate_sessions
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


def test_a_connection_dropped_while_idle_is_replaced_and_the_task_runs_at_once(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    """PostgreSQL dropped the runner's kept connection between two tasks (a restart,
    ``pg_terminate_backend`` on idle sessions): the next delivery used to wait for a
    Celery retry (``database unavailable``, 1-3 s); the claim is one guarded statement,
    so the runner reconnects and claims at once."""
    runner = in_process_runner([])
    warm = client.submit("echo", {})
    assert runner.execute(warm).action == "done"
    assert terminate_sessions(engine) >= 1
    task_id = client.submit("echo", {})
    decision = runner.execute(task_id)
    assert decision.action == "done", decision
    row = _row(engine, task_id)
    assert row["status"] == "completed" and row["states"] == 5 and row["delivery_count"] == 1
    assert runner.execute(client.submit("echo", {})).action == "done"


def test_a_connection_that_breaks_again_after_the_reconnect_retries_the_delivery(
    toolbox_env: dict[str, str], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One reconnect only: a fresh connection that fails too means PostgreSQL is away."""
    runner = in_process_runner([])
    assert runner.execute(client.submit("echo", {})).action == "done"
    real_claim = hotpath.fast_claim
    claims: list[int] = []

    def claim_on_a_dead_session(connection: Connection, *args: Any) -> Any:
        pid = connection.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
        claims.append(pid)
        with engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        return real_claim(connection, *args)

    monkeypatch.setattr(hotpath, "fast_claim", claim_on_a_dead_session)
    task_id = client.submit("echo", {})
    decision = runner.execute(task_id)
    assert decision.action == "retry" and decision.reason == "database unavailable"
    assert len(claims) == 2 and claims[0] != claims[1], "one reconnect, on a new session"
    before = _row(engine, task_id)
    assert (before["status"], before["delivery_count"], before["states"]) == ("queued", 0, 0)
    monkeypatch.setattr(hotpath, "fast_claim", real_claim)
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


def test_two_tasks_of_a_workflow_writing_the_same_number_at_once_get_one_each(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    """Two standalone tasks given one ``workflow_id`` number their own states; running at
    once, both took number 1 for different phases (the key held ``state_type``): the one
    whose insert lands second must conflict and take the next number under the lock."""
    workflow_id = uuid.uuid4()
    first = client.submit("echo", {"message": "a"}, workflow_id=workflow_id)
    second = client.submit("echo", {"message": "b"}, workflow_id=workflow_id)
    with engine.connect() as connection:
        task = lifecycle.load(connection, second)
    assert task is not None
    situation = hotpath.PhaseWrite("situation", {"output": {}}, None, None, sequence=1)
    problem = hotpath.PhaseWrite("problem", {"output": {}}, None, None, sequence=1)
    with engine.connect() as holder:
        holder.execute(
            text(
                "INSERT INTO agent_states (agent_id, task_id, workflow_id, state_type,"
                " state_data, sequence_number) SELECT agent_id, id, :workflow, 'situation',"
                " '{}', 1 FROM agent_tasks WHERE id = :id"
            ),
            {"workflow": workflow_id, "id": first},
        )  # uncommitted: the other insert cannot see it yet, only the unique index can
        with ThreadPoolExecutor(1) as pool:
            writing = pool.submit(_record, engine, task, problem)
            time.sleep(0.3)
            assert not writing.done(), "the second insert waits on the first's number"
            holder.commit()
            writing.result(timeout=10)
    assert _states(engine, workflow_id) == [
        (str(first), "situation", 1),
        (str(second), "problem", 2),
    ]
    with engine.connect() as connection:  # its own number 1 is taken by now: renumbered too
        hotpath.record_phase(connection, task, situation, None)
    assert [n for _, _, n in _states(engine, workflow_id)] == [1, 2, 3]


def _record(engine: Engine, task: lifecycle.TaskRow, write: hotpath.PhaseWrite) -> None:
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        hotpath.record_phase(connection, task, write, None)


def test_a_database_error_is_stored_as_what_postgresql_said_not_the_statement(
    engine: Engine,
) -> None:
    """A completion that failed in PostgreSQL stored SQLAlchemy's text: the whole
    statement and its parameters, the task's output among them."""
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text("SELECT CAST(:v AS numeric(10, 4))"), {"v": "secret-output 1e7"})
    assert lifecycle.error_message(caught.value).startswith(
        "database error (InvalidTextRepresentation): invalid input syntax for type numeric:"
    )
    assert "SELECT" not in lifecycle.error_message(caught.value)
    with engine.connect() as connection, pytest.raises(DBAPIError) as caught:
        connection.execute(text("SELECT CAST(:v AS numeric(10, 4))"), {"v": 10**7})
    message = lifecycle.error_details(caught.value, retryable=False)
    assert message["message"].startswith(
        "database error (NumericValueOutOfRange): numeric field overflow DETAIL: "
    )
    assert "SELECT" not in message["message"] and "10000000" not in message["message"]
