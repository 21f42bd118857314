"""The agent task engine on real worker processes, PostgreSQL and Redis."""

from __future__ import annotations

import itertools
import time
import uuid

import pytest
from sqlalchemy import Engine, text

from models.errors import AgentUnavailable, NotFound, ValidationFailed, WaitTimeout
from tests.workers import StartWorker, wait_for
from workers import client

pytestmark = pytest.mark.worker


def set_agent(engine: Engine, agent_type: str, **limits: int | bool) -> None:
    assignments = ", ".join(f"{name} = :{name}" for name in limits)
    with engine.begin() as connection:
        connection.execute(
            text(f"UPDATE ai_agents SET {assignments} WHERE agent_type = :agent_type"),
            {**limits, "agent_type": agent_type},
        )


def count(engine: Engine, sql: str, **params: object) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def test_submit_runs_to_completion_with_five_sparc_states(
    start_worker: StartWorker, engine: Engine
) -> None:
    start_worker()
    task_id = client.submit("echo", {"message": "hello district"})
    view = client.wait(task_id, timeout=30)
    assert view.status == "completed"
    assert view.output_data == {
        "phase": "result",
        "message": "hello district",
        "echo": "hello district",
        "length": 14,
    }
    assert [s.state_type for s in view.states] == [
        "situation",
        "problem",
        "action",
        "result",
        "context",
    ]
    assert [s.sequence_number for s in view.states] == [1, 2, 3, 4, 5]
    assert all(s.quality_score == 1.0 and s.confidence_score == 1.0 for s in view.states)
    assert view.progress_percentage == 100 and view.delivery_count == 1
    assert view.started_at and view.completed_at and view.assigned_at
    assert view.duration_seconds is not None and view.duration_seconds >= 0
    # echo has no model: no token rows; one phase_time row holds every phase's time
    assert sorted(_metric_types(engine, task_id)) == [
        "execution_time",
        "phase_time",
        "quality_score",
        "success",
    ]
    phases = count(
        engine,
        "SELECT count(*) FROM agent_metrics, jsonb_object_keys(context->'phases')"
        f" WHERE task_id = '{task_id}' AND metric_type = 'phase_time'",
    )
    assert phases == 5
    assert (
        count(
            engine,
            "SELECT count(*) FROM ai_agents WHERE agent_type = 'echo'"
            " AND last_health_check IS NOT NULL",
        )
        == 1
    )


def _metric_types(engine: Engine, task_id: uuid.UUID) -> list[str]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT metric_type FROM agent_metrics WHERE task_id = :id"), {"id": task_id}
            ).scalars()
        )


def test_retryable_failures_back_off_then_succeed_without_rerunning_phases(
    start_worker: StartWorker, engine: Engine
) -> None:
    start_worker()
    task_id = client.submit("echo", {"message": "x", "fail_phase": "action", "fail_attempts": 2})
    view = client.wait(task_id, timeout=40)
    assert view.status == "completed", view.error_message
    assert view.retry_count == 2
    assert [s.state_type for s in view.states] == [
        "situation",
        "problem",
        "action",
        "result",
        "context",
    ]
    created = [s.created_at for s in view.states]
    assert (created[2] - created[1]).total_seconds() >= 1.0, "retries must back off"
    assert view.error_details is not None and view.error_details["type"] == "EchoFailure"


def test_permanent_failure_fails_at_once(start_worker: StartWorker) -> None:
    start_worker()
    task_id = client.submit(
        "echo", {"fail_phase": "problem", "fail_kind": "permanent", "fail_attempts": 5}
    )
    view = client.wait(task_id, timeout=30)
    assert view.status == "failed"
    assert view.retry_count == 0
    assert view.error_details is not None
    assert view.error_details["type"] == "EchoPermanentFailure"
    assert view.error_details["retryable"] is False
    assert "Traceback" in view.error_details["traceback"]
    assert [s.state_type for s in view.states] == ["situation"]
    assert view.progress_percentage == 20  # the phase it wrote; it showed 0 %


def test_retry_budget_comes_from_the_agent(start_worker: StartWorker, engine: Engine) -> None:
    set_agent(engine, "echo", retry_count=1)
    start_worker()
    task_id = client.submit("echo", {"fail_phase": "situation", "fail_attempts": 9})
    view = client.wait(task_id, timeout=30)
    assert view.status == "failed"
    assert view.retry_count == 1
    assert view.error_message is not None and "retry budget of 1 spent" in view.error_message


def test_soft_time_limit_records_a_timeout(start_worker: StartWorker, engine: Engine) -> None:
    set_agent(engine, "echo", timeout_seconds=1, retry_count=0)
    start_worker()
    task_id = client.submit("echo", {"phase_seconds": 3})
    view = client.wait(task_id, timeout=30)
    assert view.status == "failed"
    assert view.error_details is not None and view.error_details["type"] == "TaskTimeout"
    assert "soft time limit of 1s" in (view.error_message or "")


def test_cancel_before_start_never_runs(start_worker: StartWorker, engine: Engine) -> None:
    task_id = client.submit("echo", {"message": "never"})
    assert client.cancel(task_id).status == "cancelled"
    start_worker()
    marker = client.submit("echo", {"message": "after"})
    client.wait(marker, timeout=30)
    view = client.get_task(task_id)
    assert view.status == "cancelled" and view.states == [] and view.started_at is None


def test_cancel_while_running_stops_at_the_next_phase(start_worker: StartWorker) -> None:
    start_worker()
    task_id = client.submit("echo", {"phase_seconds": 0.5})
    wait_for(lambda: len(client.get_task(task_id).states) >= 1, timeout=30)
    client.cancel(task_id)
    view = client.wait(task_id, timeout=30)
    assert view.status == "cancelled"
    assert 1 <= len(view.states) < 5
    assert view.cancel_requested_at is not None


def test_higher_priority_runs_first(start_worker: StartWorker, engine: Engine) -> None:
    low = client.submit_many("echo", [{"message": f"low {i}"} for i in range(4)], priority=1)
    high = client.submit("echo", {"message": "urgent"}, priority=9)
    start_worker(concurrency=1)
    for task_id in [*low, high]:
        client.wait(task_id, timeout=30)
    with engine.connect() as connection:
        order = list(
            connection.execute(text("SELECT id FROM agent_tasks ORDER BY started_at")).scalars()
        )
    assert order[0] == high


def test_concurrency_limit_holds_across_two_worker_processes(
    start_worker: StartWorker, engine: Engine
) -> None:
    set_agent(engine, "echo", max_concurrent_tasks=1, retry_count=0)
    start_worker(concurrency=2)
    start_worker(concurrency=2)
    ids = client.submit_many("echo", [{"phase_seconds": 0.1} for _ in range(4)])
    views = [client.wait(task_id, timeout=60) for task_id in ids]
    assert all(view.status == "completed" for view in views)
    assert all(view.retry_count == 0 for view in views), "waiting must not spend retries"
    spans = sorted((v.started_at, v.completed_at) for v in views)
    for (_, end), (start, _) in itertools.pairwise(spans):
        assert end is not None and start is not None and start >= end


def test_same_idempotency_key_returns_the_first_task(engine: Engine, toolbox_env: dict) -> None:
    first = client.submit("echo", {"message": "a"}, idempotency_key="lesson-42")
    second = client.submit("echo", {"message": "a"}, idempotency_key="lesson-42")
    assert first == second
    assert count(engine, "SELECT count(*) FROM agent_tasks") == 1


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"message": 7}, ["message"]),
        ({"phase_seconds": -1, "colour": "red"}, ["phase_seconds", "colour"]),
        ({"fail_phase": "lunch"}, ["fail_phase"]),
    ],
)
def test_invalid_payloads_write_nothing(
    engine: Engine, toolbox_env: dict, payload: dict, fields: list[str]
) -> None:
    with pytest.raises(ValidationFailed) as error:
        client.submit("echo", payload)
    for field in fields:
        assert field in error.value.message
    assert count(engine, "SELECT count(*) FROM agent_tasks") == 0


def test_unknown_and_inactive_agents_are_refused(engine: Engine, toolbox_env: dict) -> None:
    with pytest.raises(AgentUnavailable, match="unknown agent 'painter'"):
        client.submit("painter", {})
    set_agent(engine, "echo", is_active=False)
    with pytest.raises(AgentUnavailable, match="inactive"):
        client.submit("echo", {})
    assert count(engine, "SELECT count(*) FROM agent_tasks") == 0


def test_wait_times_out_and_missing_tasks_are_not_found(toolbox_env: dict) -> None:
    task_id = client.submit("echo", {})
    with pytest.raises(WaitTimeout, match="still queued"):
        client.wait(task_id, timeout=0.2)
    with pytest.raises(NotFound):
        client.get_task(uuid.uuid4())


def test_submit_in_the_callers_transaction_sends_only_after_commit(
    start_worker: StartWorker, engine: Engine, toolbox_env: dict
) -> None:
    from sqlalchemy.orm import Session

    from workers.db import get_engine

    start_worker()
    with Session(get_engine()) as session:
        rolled_back = client.submit("echo", {"message": "rolled back"}, session=session)
        session.rollback()
    with Session(get_engine()) as session, session.begin():
        kept = client.submit("echo", {"message": "kept"}, session=session)
        time.sleep(0.3)
        with engine.connect() as other:
            assert other.execute(text("SELECT count(*) FROM agent_tasks")).scalar_one() == 0
    assert client.wait(kept, timeout=30).status == "completed"
    with pytest.raises(NotFound):
        client.get_task(rolled_back)


def test_progress_events_are_published_per_workflow(
    start_worker: StartWorker, redis_url: str
) -> None:
    import json

    import redis

    from workers.redis import client_url

    start_worker()
    listener = redis.Redis.from_url(client_url(redis_url)).pubsub()
    listener.psubscribe("toolbox:progress:*")
    task_id = client.submit("echo", {"phase_seconds": 0.3})
    events: list[dict[str, object]] = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any(e.get("status") == "completed" for e in events):
        message = listener.get_message(timeout=1.0)
        # pub/sub ignores Redis database numbers: other runs on the server publish here too
        if message and message["channel"].decode() == f"toolbox:progress:{task_id}":
            events.append(json.loads(message["data"]))
    listener.close()
    phases = [e["phase"] for e in events if "phase" in e]
    # a standalone task writes its last phase with its completion: that event closes the run
    assert phases == ["situation", "problem", "action", "result"]
    assert events[-1] == {
        "task_id": str(task_id),
        "progress": 100,
        "status": "completed",
        "agent_type": "echo",
    }
    progress = [e["progress"] for e in events]
    assert progress == sorted(progress)
