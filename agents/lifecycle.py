"""Row transitions of ``agent_tasks``: claim, phase written, done, retry, fail.

Every function takes a connection inside the caller's transaction and never
commits; the runner (``agents.engine``) decides where transactions end.
Each UPDATE is guarded by the status it expects, so a late or duplicate
caller changes nothing.
"""

from __future__ import annotations

import datetime as dt
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

TERMINAL = frozenset({"completed", "failed", "cancelled"})
WAITING = ("pending", "queued", "retrying")


@dataclass(frozen=True)
class TaskRow:
    id: uuid.UUID
    agent_id: uuid.UUID
    agent_type: str
    status: str
    input_data: dict[str, Any]
    workflow_id: uuid.UUID
    parent_task_id: uuid.UUID | None
    retry_count: int
    delivery_count: int
    cancel_requested_at: dt.datetime | None
    not_before: dt.datetime | None
    max_concurrent_tasks: int
    retry_budget: int
    timeout_seconds: int
    agent_active: bool


def load(connection: Connection, task_id: uuid.UUID) -> TaskRow | None:
    row = (
        connection.execute(
            text(
                "SELECT t.id, t.agent_id, a.agent_type, t.status, t.input_data,"
                " coalesce(t.workflow_id, t.id) AS workflow_id, t.parent_task_id, t.retry_count,"
                " t.delivery_count, t.cancel_requested_at, t.not_before, a.max_concurrent_tasks,"
                " a.retry_count AS retry_budget, a.timeout_seconds, a.is_active AS agent_active"
                " FROM agent_tasks t JOIN ai_agents a ON a.id = t.agent_id WHERE t.id = :id"
            ),
            {"id": task_id},
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else TaskRow(**row)


def claim(connection: Connection, task_id: uuid.UUID, hostname: str) -> int | None:
    """Mark the task running; return its delivery count, or None if it is finished.

    Only the holder of the task's lease calls this, so ``running`` is a
    claimable status: its previous runner is dead.
    """
    count = connection.execute(
        text(
            "UPDATE agent_tasks SET status = 'running', delivery_count = delivery_count + 1,"
            " assigned_at = coalesce(assigned_at, now()), started_at = coalesce(started_at, now()),"
            " worker_hostname = :host, heartbeat_at = now(), not_before = NULL"
            " WHERE id = :id AND status IN ('pending', 'queued', 'retrying', 'running')"
            " RETURNING delivery_count"
        ),
        {"id": task_id, "host": hostname},
    ).scalar_one_or_none()
    return None if count is None else int(count)


def finished_phases(connection: Connection, task_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    rows = connection.execute(
        text("SELECT state_type, state_data FROM agent_states WHERE task_id = :id"),
        {"id": task_id},
    ).all()
    return dict(rows)


_INSERT_STATE = text(
    "INSERT INTO agent_states (agent_id, task_id, workflow_id, state_type, state_data,"
    " sequence_number, quality_score, confidence_score)"
    " SELECT :agent, :task, :workflow, :state_type, :data,"
    " coalesce(max(sequence_number), 0) + 1, :quality, :confidence"
    " FROM agent_states WHERE workflow_id = :workflow"
    " ON CONFLICT DO NOTHING RETURNING id"
).bindparams(bindparam("data", type_=JSONB))


def record_phase(
    connection: Connection,
    task: TaskRow,
    phase: str,
    state_data: dict[str, Any],
    scores: tuple[float | None, float | None],
    progress: int,
) -> dt.datetime | None:
    """Write one finished phase and the task's progress; return a pending cancel request.

    Sequence numbers run per workflow; parallel tasks of one workflow may
    race for the same number, so the insert is retried under a
    per-workflow transaction lock when that happens.
    """
    params = {
        "agent": task.agent_id,
        "task": task.id,
        "workflow": task.workflow_id,
        "state_type": phase,
        "data": state_data,
        "quality": scores[0],
        "confidence": scores[1],
    }
    if connection.execute(_INSERT_STATE, params).scalar_one_or_none() is None:
        written = connection.execute(
            text("SELECT 1 FROM agent_states WHERE task_id = :task AND state_type = :state_type"),
            params,
        ).scalar_one_or_none()
        if written is None:
            connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:w, 7))"),
                {"w": str(task.workflow_id)},
            )
            connection.execute(_INSERT_STATE, params).scalar_one()
    return connection.execute(
        text(
            "UPDATE agent_tasks SET progress_percentage = greatest(progress_percentage, :progress),"
            " intermediate_results = coalesce(intermediate_results, '{}'::jsonb)"
            " || jsonb_build_object('last_phase', CAST(:phase AS text)), heartbeat_at = now()"
            " WHERE id = :task RETURNING cancel_requested_at"
        ),
        {"task": task.id, "progress": progress, "phase": phase},
    ).scalar_one_or_none()


def complete(
    connection: Connection, task: TaskRow, output: dict[str, Any], metrics: list[dict[str, Any]]
) -> bool:
    done = connection.execute(
        text(
            "UPDATE agent_tasks SET status = 'completed', output_data = :output,"
            " completed_at = now(), progress_percentage = 100, error_message = NULL,"
            " duration_seconds = ceil(extract(epoch FROM now() - started_at))::int"
            " WHERE id = :id AND status = 'running' RETURNING id"
        ).bindparams(bindparam("output", type_=JSONB)),
        {"id": task.id, "output": output},
    ).scalar_one_or_none()
    if done is None:
        return False
    write_metrics(connection, task, metrics)
    connection.execute(
        text(
            "UPDATE ai_agents SET last_health_check = now() WHERE id = :agent"
            " AND (last_health_check IS NULL OR last_health_check < now() - interval '5 seconds')"
        ),
        {"agent": task.agent_id},
    )
    return True


def write_metrics(connection: Connection, task: TaskRow, metrics: list[dict[str, Any]]) -> None:
    if not metrics:
        return
    connection.execute(
        text(
            "INSERT INTO agent_metrics (agent_id, task_id, metric_type, metric_value, context)"
            " VALUES (:agent, :task, :metric_type, :value, :context)"
        ).bindparams(bindparam("context", type_=JSONB)),
        [{"agent": task.agent_id, "task": task.id, **metric} for metric in metrics],
    )


def error_details(exc: BaseException, *, retryable: bool) -> dict[str, Any]:
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6)
    return {
        "type": type(exc).__name__,
        "message": str(exc),
        "retryable": retryable,
        "traceback": "".join(frames)[-4000:],
    }


def schedule_retry(
    connection: Connection, task_id: uuid.UUID, countdown: float, details: dict[str, Any]
) -> bool:
    row = connection.execute(
        text(
            "UPDATE agent_tasks SET status = 'retrying', retry_count = retry_count + 1,"
            " delivery_count = 0, not_before = now() + make_interval(secs => :countdown),"
            " error_message = :message, error_details = :details, heartbeat_at = NULL"
            " WHERE id = :id AND status = 'running' RETURNING id"
        ).bindparams(bindparam("details", type_=JSONB)),
        {"id": task_id, "countdown": countdown, "message": details["message"], "details": details},
    ).scalar_one_or_none()
    return row is not None


def finish_unsuccessfully(
    connection: Connection, task_id: uuid.UUID, status: str, details: dict[str, Any] | None
) -> bool:
    """End the task ``failed`` or ``cancelled`` from any non-terminal status."""
    row = connection.execute(
        text(
            "UPDATE agent_tasks SET status = :status, completed_at = now(),"
            " error_message = :message, error_details = :details,"
            " duration_seconds = ceil(extract(epoch FROM now() - started_at))::int"
            " WHERE id = :id AND status NOT IN ('completed', 'failed', 'cancelled') RETURNING id"
        ).bindparams(bindparam("details", type_=JSONB)),
        {
            "id": task_id,
            "status": status,
            "message": None if details is None else details["message"],
            "details": details,
        },
    ).scalar_one_or_none()
    return row is not None
