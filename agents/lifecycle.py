"""Row transitions of ``agent_tasks`` off the hot path: load, slow claim, retry, fail.

Every function takes a connection and never commits; the runner
(``agents.engine``) decides where transactions end.  The statements every
task runs (fast claim, phases, completion) live in ``agents.hotpath``.
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
from sqlalchemy.exc import DBAPIError

from agents.base import PHASES
from models.redaction import redact

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


TASK_COLUMNS = (
    "t.id, t.agent_id, a.agent_type, t.status, t.input_data,"
    " coalesce(t.workflow_id, t.id) AS workflow_id, t.parent_task_id, t.retry_count,"
    " t.delivery_count, t.cancel_requested_at, t.not_before, a.max_concurrent_tasks,"
    " a.retry_count AS retry_budget, a.timeout_seconds, a.is_active AS agent_active"
)


def load(connection: Connection, task_id: uuid.UUID) -> TaskRow | None:
    row = connection.execute(
        text(f"SELECT {TASK_COLUMNS} FROM agent_tasks t JOIN ai_agents a ON a.id = t.agent_id"
             " WHERE t.id = :id"),
        {"id": task_id},
    ).mappings().one_or_none()  # fmt: skip
    return None if row is None else TaskRow(**row)


@dataclass(frozen=True)
class Loaded:
    leased: bool
    slot_taken: bool
    task: TaskRow | None


AGENT_KEY_SQL = "('x' || left(replace(a.id::text, '-', ''), 8))::bit(32)::int"
"""``agents.leases.agent_key`` computed by PostgreSQL (first four bytes, signed)."""
ASYNC_COMMIT_SQL = "set_config('synchronous_commit', 'off', false)"
"""Turns asynchronous commit on for the session (both claims; ``hotpath.release`` undoes it)."""
"""``agents.leases.agent_key`` computed by PostgreSQL (first four bytes, signed)."""


def lease_and_load(
    connection: Connection, task_id: uuid.UUID, lease_key: int, slot_start: int
) -> Loaded:
    """Try the task's lease and one concurrency slot, and read the row: one round trip.

    The slot tried is ``slot_start`` modulo the agent's slot count; the caller
    tries the others only if that one is taken.

    It also turns ``synchronous_commit`` off for this session
    (``hotpath.release`` restores it): a phase lost to a PostgreSQL crash is
    simply run again, while the completion asks for a synchronous commit.
    """
    row = connection.execute(
        text(f"SELECT pg_try_advisory_lock(:key) AS leased,"
             f" pg_try_advisory_lock({AGENT_KEY_SQL}, :slot % a.max_concurrent_tasks)"
             " AS slot_taken,"
             f" {ASYNC_COMMIT_SQL} AS sync_commit, {TASK_COLUMNS}"
             " FROM agent_tasks t JOIN ai_agents a ON a.id = t.agent_id WHERE t.id = :id"),
        {"id": task_id, "key": lease_key, "slot": slot_start},
    ).mappings().one_or_none()  # fmt: skip
    if row is None:
        return Loaded(False, False, None)
    values = dict(row)
    leased, slot_taken = bool(values.pop("leased")), bool(values.pop("slot_taken"))
    values.pop("sync_commit")
    return Loaded(leased, slot_taken, TaskRow(**values))


CLAIM_SET = (
    "status = 'running', delivery_count = t.delivery_count + 1,"
    " assigned_at = coalesce(t.assigned_at, now()), started_at = coalesce(t.started_at, now()),"
    " worker_hostname = %(host)s, heartbeat_at = now(), not_before = NULL"
)
"""What a claim sets on row ``t`` (psycopg placeholders); shared with ``hotpath.fast_claim``."""
CLAIMABLE = "t.status IN ('pending', 'queued', 'retrying', 'running')"
FINISHED_PHASES = (
    "(SELECT coalesce(jsonb_object_agg(state_type, state_data), '{}'::jsonb)"
    " FROM agent_states WHERE task_id = %(id)s) AS finished"
)


def claim(
    connection: Connection, task_id: uuid.UUID, hostname: str
) -> tuple[int, dict[str, dict[str, Any]]] | None:
    """Mark the task running; return its delivery count and the phases already written.

    None when the task finished meanwhile.  Only the holder of the task's
    lease calls this, so ``running`` is a claimable status: its previous
    runner is dead.
    """
    row = connection.exec_driver_sql(
        f"WITH claimed AS (UPDATE agent_tasks t SET {CLAIM_SET} WHERE t.id = %(id)s"
        f" AND {CLAIMABLE} RETURNING t.delivery_count)"
        f" SELECT delivery_count, {FINISHED_PHASES} FROM claimed",
        {"id": task_id, "host": hostname},
    ).one_or_none()
    return None if row is None else (int(row.delivery_count), dict(row.finished))


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


def error_message(exc: BaseException) -> str:
    """``exc`` as a task's ``error_message``: a database error says what PostgreSQL said
    (``numeric field overflow``), not SQLAlchemy's text, which quotes the whole statement
    and its parameters (the task's output among them)."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        said = " ".join(str(exc.orig).split())
        return f"database error ({type(exc.orig).__name__}): {said}"
    return str(exc)


def error_details(exc: BaseException, *, retryable: bool) -> dict[str, Any]:
    """What a failed attempt stores and reports, secrets masked (``redact``): the traceback
    also holds the provider's own exception, which may quote a key."""
    frames = traceback.format_exception(type(exc), exc, exc.__traceback__, limit=-6)
    return {
        "type": type(exc).__name__,
        "message": redact(error_message(exc)),
        "retryable": retryable,
        "traceback": redact("".join(frames))[-4000:],
    }


PHASES_DONE = (
    "progress_percentage = greatest(progress_percentage, least(99,"
    " (SELECT count(*) FROM agent_states s WHERE s.task_id = agent_tasks.id)::int * 100"
    f" / {len(PHASES)}))"
)
"""A task that stops early shows the phases it wrote, as a running one reports them (at
most every ``PROGRESS_INTERVAL``, so a fast task that failed still showed 0 %)."""


def schedule_retry(
    connection: Connection, task_id: uuid.UUID, countdown: float, details: dict[str, Any]
) -> bool:
    row = connection.execute(
        text(
            "UPDATE agent_tasks SET status = 'retrying', retry_count = retry_count + 1,"
            " delivery_count = 0, not_before = now() + make_interval(secs => :countdown),"
            " error_message = :message, error_details = :details, heartbeat_at = NULL,"
            f" {PHASES_DONE}"
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
            " duration_seconds = ceil(extract(epoch FROM now() - started_at))::int,"
            f" {PHASES_DONE}"
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
