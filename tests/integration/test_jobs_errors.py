"""Failures into ``error_logs`` on real PostgreSQL: dedup, counts, severity, regressions."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, text

from agents.engine import TaskFailure
from models.errors import ConfigurationError, LMSUnavailable
from tests.integration.ops_support import count, insert
from tests.workers import StartWorker, wait_for
from workers.app import app
from workers.jobs.errors import record_exception, record_task_failure


def agent_task(engine: Engine) -> tuple[uuid.UUID, uuid.UUID]:
    with engine.begin() as connection:
        agent = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()
        task = insert(
            connection, "agent_tasks", json=("input_data",), agent_id=agent, task_type="echo",
            task_name="echo task", input_data={"message": "private essay"},
        )  # fmt: skip
    return agent, task


def failure(engine: Engine, status: str, message: str, kind: str = "EchoFailure") -> TaskFailure:
    agent, task = agent_task(engine)
    details = {"type": kind, "message": message, "retryable": status == "retrying",
               "traceback": "Traceback (most recent call last): ..."}  # fmt: skip
    return TaskFailure(task, agent, uuid.uuid4(), "echo", status, details)


def errors(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text("SELECT * FROM error_logs ORDER BY first_seen")))


def test_repeats_are_counted_on_one_row(engine: Engine) -> None:
    first = failure(engine, "retrying", "phase action failed on attempt 1 after 2.5s")
    record_task_failure(engine, first)
    last = failure(engine, "failed", "phase action failed on attempt 3 after 40.1s")
    record_task_failure(engine, last)
    [row] = errors(engine)
    assert row.occurrence_count == 2 and row.first_seen < row.last_seen
    assert row.severity == "high", "the highest severity seen stays"
    assert row.service_name == "toolbox.agent.echo" and row.error_type == "EchoFailure"
    assert row.task_id == last.task_id and row.agent_id == last.agent_id
    assert row.error_message == "phase action failed on attempt 3 after 40.1s"
    assert row.request_data == {
        "workflow_id": str(last.workflow_id), "status": "failed", "agent_type": "echo",
    }  # fmt: skip
    assert "private essay" not in str(row._mapping)
    record_task_failure(engine, failure(engine, "retrying", "phase action failed on attempt 9"))
    assert errors(engine)[0].severity == "high"


def test_different_errors_get_their_own_rows_and_severities(engine: Engine) -> None:
    record_task_failure(engine, failure(engine, "retrying", "model timed out"))
    record_task_failure(engine, failure(engine, "failed", "model timed out", "ModelError"))
    crash = failure(engine, "failed", "delivered 6 times", "RedeliveryExceeded")
    record_task_failure(engine, crash)
    severities = {(row.error_type, row.severity) for row in errors(engine)}
    assert severities == {
        ("EchoFailure", "low"), ("ModelError", "high"), ("RedeliveryExceeded", "critical"),
    }  # fmt: skip


def test_a_resolved_error_that_comes_back_is_reopened(engine: Engine) -> None:
    record_task_failure(engine, failure(engine, "failed", "boom 1"))
    with engine.begin() as connection:
        connection.execute(text("UPDATE error_logs SET status = 'resolved', resolved_at = now()"))
    record_task_failure(engine, failure(engine, "failed", "boom 2"))
    [row] = errors(engine)
    assert (row.status, row.resolved_at, row.occurrence_count) == ("new", None, 2)


def test_exceptions_of_other_tasks(engine: Engine) -> None:
    record_exception(
        engine, LMSUnavailable("canvas answered 503"), service="toolbox.lms.sync",
        celery_task_id=str(uuid.uuid4()), stack_trace="tb",
    )  # fmt: skip
    record_exception(
        engine, ConfigurationError("TOOLBOX_SECRET_KEYS cannot decrypt"), service="toolbox.lms.sync"
    )
    rows = {row.error_type: row for row in errors(engine)}
    assert rows["LMSUnavailable"].severity == "medium"
    assert rows["LMSUnavailable"].task_id is None, "a Celery id is not an agent task"
    assert rows["ConfigurationError"].severity == "critical"
    assert count(engine, "SELECT count(*) FROM error_logs WHERE environment IS NOT NULL") == 2


@pytest.mark.worker
def test_a_hard_time_limit_kill_is_one_error_counted_once(
    engine: Engine, start_worker: StartWorker
) -> None:
    worker = start_worker(queues="maintenance", concurrency=1, include="tests.overrun_tasks")
    app.send_task("toolbox.tests.overrun", queue="maintenance")

    def kills() -> list[Any]:
        return [row for row in errors(engine) if row.error_type == "TimeLimitExceeded"]

    wait_for(kills, timeout=30)
    # the failure signal may record the row before the worker's log line is written
    wait_for(lambda: "Hard time limit (1.5s) exceeded" in worker.log(), timeout=10)
    time.sleep(2)  # room for Celery's second task_failure signal of the same kill
    (kill,) = kills()
    assert (kill.service_name, kill.occurrence_count) == ("toolbox.tests.overrun", 1)
