"""The statements every agent task runs: claim, each phase, completion.

They are sent straight to psycopg on the runner's connection: SQLAlchemy's
work around a textual statement (about 65 µs of CPU) was a fifth of an echo
task's cost.  Each is one statement, so on the runner's autocommit connection
each step is one atomic round trip; each UPDATE is guarded by the status it
expects, so a late or duplicate caller changes nothing.  Errors come back as
SQLAlchemy's ``DBAPIError`` (connection invalidated when it broke), exactly
as from ``Connection.execute``.  The rarer transitions (slow claim, retry,
failure) stay in ``agents.lifecycle``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg.pq import ExecStatus
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from agents.lifecycle import (
    AGENT_KEY_SQL,
    ASYNC_COMMIT_SQL,
    CLAIM_SET,
    CLAIMABLE,
    FINISHED_PHASES,
    TASK_COLUMNS,
    TaskRow,
)
from models.errors import RetryableError


def run(connection: Connection, sql: str, params: Mapping[str, Any]) -> dict[str, Any] | None:
    """Execute one statement on the connection's psycopg connection; the first row."""
    driver = connection.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"the agent hot path needs psycopg 3, not {type(driver).__name__}")
    try:
        with driver.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql, params)
            # the result's status, not ``description`` (which builds column objects)
            result = cursor.pgresult
            returned = result is not None and result.status == ExecStatus.TUPLES_OK
            return cursor.fetchone() if returned else None
    except psycopg.Error as exc:
        broken = driver.broken or driver.closed
        if broken:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            sql, dict(params), exc, psycopg.Error, connection_invalidated=broken
        ) from exc


@dataclass(frozen=True)
class PhaseWrite:
    """One finished phase, as ``record_phase`` or ``complete`` writes it.

    ``sequence`` is the state's number in its workflow when the runner knows
    it (a standalone task numbers its own states: already written + 1);
    None lets the statement take the workflow's highest + 1.
    """

    phase: str
    data: dict[str, Any]
    quality: float | None
    confidence: float | None
    sequence: int | None = None

    def params(self, task: TaskRow) -> dict[str, Any]:
        return {
            "agent": task.agent_id,
            "task": task.id,
            "workflow": task.workflow_id,
            "state_type": self.phase,
            "data": Jsonb(self.data),
            "quality": self.quality,
            "confidence": self.confidence,
            "seq": self.sequence,
        }


_CLAIMED_COLUMNS = TASK_COLUMNS.replace("t.status,", "'running'::text AS status,")
_FAST_CLAIM = (
    f"WITH claimed AS (UPDATE agent_tasks t SET {CLAIM_SET} FROM ai_agents a"
    f" WHERE a.id = t.agent_id AND t.id = %(id)s AND {CLAIMABLE}"
    " AND pg_try_advisory_lock(%(key)s)"
    f" AND pg_try_advisory_lock({AGENT_KEY_SQL}, %(slot)s %% a.max_concurrent_tasks)"
    f" AND {ASYNC_COMMIT_SQL} = 'off'"
    f" RETURNING {_CLAIMED_COLUMNS}) SELECT claimed.*, {FINISHED_PHASES} FROM claimed"
)


def fast_claim(
    connection: Connection, task_id: uuid.UUID, hostname: str, lease_key: int, slot_start: int
) -> tuple[TaskRow, int, dict[str, dict[str, Any]]] | None:
    """Lease, slot, claim and resume in one round trip, for the common case.

    The row is claimed only if the task is claimable AND this session got
    both the task's lease and a concurrency slot; any lock taken by a
    statement that then claimed nothing is released with the others when
    the runner finishes.  None means "look closer"
    (``lifecycle.lease_and_load``): finished, held by another worker, or no
    slot at ``slot_start``.  Phases written from here on commit
    asynchronously (a phase lost to a PostgreSQL crash is simply run again);
    the completion asks for a synchronous commit itself.
    """
    params = {"id": task_id, "host": hostname, "key": lease_key, "slot": slot_start}
    row = run(connection, _FAST_CLAIM, params)
    if row is None:
        return None
    finished = dict(row.pop("finished"))
    task = TaskRow(**row)
    return task, task.delivery_count, finished


_STATE_COLUMNS = (
    " (agent_id, task_id, workflow_id, state_type, state_data, sequence_number, quality_score,"
    " confidence_score)"
)
_STATE_VALUES = (
    f"{_STATE_COLUMNS} SELECT %(agent)s, %(task)s, %(workflow)s, %(state_type)s, %(data)s,"
    " coalesce(max(sequence_number), 0) + 1, %(quality)s, %(confidence)s"
    " FROM agent_states WHERE workflow_id = %(workflow)s"
)
_STATE_NUMBERED = (
    f"{_STATE_COLUMNS} SELECT %(agent)s, %(task)s, %(workflow)s, %(state_type)s, %(data)s,"
    " %(seq)s, %(quality)s, %(confidence)s WHERE NOT EXISTS (SELECT FROM agent_states"
    " WHERE workflow_id = %(workflow)s AND sequence_number = %(seq)s)"
)
"""A state under the number the runner gave it, unless another state of the workflow has it."""


def _record_phase(*, numbered: bool, progress: bool) -> str:
    values = _STATE_NUMBERED if numbered else _STATE_VALUES
    state = f"WITH state AS (INSERT INTO agent_states{values} ON CONFLICT DO NOTHING RETURNING id)"
    if not progress:
        return (
            f"{state} SELECT cancel_requested_at, (SELECT count(*) FROM state) AS written"
            " FROM agent_tasks WHERE id = %(task)s"
        )
    return (
        f"{state} UPDATE agent_tasks SET"
        " progress_percentage = greatest(progress_percentage, %(progress)s),"
        " intermediate_results = coalesce(intermediate_results, '{}'::jsonb)"
        " || jsonb_build_object('last_phase', %(state_type)s::text), heartbeat_at = now()"
        " WHERE id = %(task)s"
        " RETURNING cancel_requested_at, (SELECT count(*) FROM state) AS written"
    )


_RECORD_PHASE = {
    (numbered, progress): _record_phase(numbered=numbered, progress=progress)
    for numbered in (False, True)
    for progress in (False, True)
}
_WORKFLOW_LOCK = "SELECT pg_advisory_xact_lock(hashtextextended(%(workflow)s::text, 7))"
_INSERT_STATE = (
    f"WITH state AS (INSERT INTO agent_states{_STATE_VALUES} ON CONFLICT DO NOTHING RETURNING 1)"
    " SELECT (SELECT count(*) FROM state) + (SELECT count(*) FROM agent_states"
    " WHERE task_id = %(task)s AND state_type = %(state_type)s) AS present"
)
"""The state under the workflow's next number; ``present`` 0: that number was taken
meanwhile by a writer outside the lock (a numbered or fast insert), so go again."""
_RENUMBER_ATTEMPTS = 20


def record_phase(
    connection: Connection, task: TaskRow, write: PhaseWrite, progress: int | None
) -> dt.datetime | None:
    """Write one finished phase (and the task's progress); return a pending cancel request.

    ``progress`` None leaves the task row alone: the runner reports progress
    a few times a second, not at every phase of a fast task.  Sequence
    numbers run per workflow and parallel tasks of one workflow may race for
    the same number; then (rarely) the insert is redone in a transaction
    under a per-workflow lock.
    """
    params = write.params(task)
    sql = _RECORD_PHASE[(write.sequence is not None, progress is not None)]
    row = run(connection, sql, params if progress is None else params | {"progress": progress})
    if row is None:
        raise LookupError(f"task {task.id} vanished while it ran")
    if row["written"] == 0:
        _write_state_locked(connection, params)
    cancel: dt.datetime | None = row["cancel_requested_at"]
    return cancel


def _write_state_locked(connection: Connection, params: dict[str, Any]) -> None:
    """The state again, numbered under the workflow's lock (after losing a sequence race).

    Nothing happens if the phase is in fact written already (a duplicate delivery).
    Writers that do not take the lock (every first try) may still take the
    number it picked: it picks the next one then, a bounded number of times.
    """
    with connection.engine.begin() as locked:
        run(locked, _WORKFLOW_LOCK, params)
        for _ in range(_RENUMBER_ATTEMPTS):
            row = run(locked, _INSERT_STATE, params)
            if row is not None and row["present"]:
                return
    raise RetryableError(
        f"no free sequence number for the {params['state_type']} state of workflow"
        f" {params['workflow']} after {_RENUMBER_ATTEMPTS} tries"
    )


_UNLOCK_SQL = "pg_advisory_unlock_all(), set_config('synchronous_commit', 'on', false)"
"""Drops the session's advisory locks and undoes ``ASYNC_COMMIT_SQL``."""


def release(connection: Connection) -> None:
    """Drop every advisory lock of this session and restore its commit mode."""
    run(connection, f"SELECT {_UNLOCK_SQL}", {})


_SLOT_WAIT = (
    "WITH requeued AS (UPDATE agent_tasks SET dispatched_at = now(), not_before = CASE"
    " WHEN status = 'retrying' THEN greatest(not_before, now()) ELSE not_before END"
    f" WHERE id = %(id)s AND status IN ('queued', 'retrying') RETURNING 1) SELECT {_UNLOCK_SQL}"
)


def release_to_wait_for_slot(connection: Connection, task_id: uuid.UUID) -> None:
    """``release``, and the row dated as sent now, in the same round trip.

    A task that found no concurrency slot goes back to the broker: its caller
    publishes a new message, behind every message waiting in its priority's
    list.  The relay (``agents.recovery.lost_in_broker``) tells a ``queued``
    row whose message is no longer waiting by ``dispatched_at`` (the oldest
    are delivered first), and a ``retrying`` row whose message is lost by a
    ``not_before`` long past; so the row must be as young as its new message.
    """
    run(connection, _SLOT_WAIT, {"id": task_id})


def _completion(*, with_state: bool, release_locks: bool) -> str:
    state = (
        f" state AS (INSERT INTO agent_states{_STATE_NUMBERED} ON CONFLICT DO NOTHING RETURNING 1),"
        if with_state
        else ""
    )
    written = ", (SELECT count(*) FROM state) AS written" if with_state else ""
    unlock = f", {_UNLOCK_SQL}" if release_locks else ""
    return (
        f"WITH durable AS (SELECT set_config('synchronous_commit', 'on', true)),{state}"
        " done AS (UPDATE agent_tasks SET status = 'completed', output_data = %(output)s,"
        " completed_at = now(), progress_percentage = 100, error_message = NULL,"
        " duration_seconds = ceil(extract(epoch FROM now() - started_at))::int"
        " WHERE id = %(id)s AND status = 'running' RETURNING id, agent_id),"
        " metrics AS (INSERT INTO agent_metrics (agent_id, task_id, metric_type, metric_value,"
        " context) SELECT done.agent_id, done.id, m.metric_type, m.value, m.context"
        " FROM done, jsonb_to_recordset(%(metrics)s) AS m(metric_type text, value numeric,"
        " context jsonb) RETURNING 1),"
        " agent AS (UPDATE ai_agents SET last_health_check = now()"
        " WHERE id IN (SELECT agent_id FROM done) AND (last_health_check IS NULL"
        " OR last_health_check < now() - interval '5 seconds') RETURNING 1)"
        f" SELECT count(*) AS completed{written}{unlock} FROM done, durable"
    )


_COMPLETIONS = {
    (with_state, unlock): _completion(with_state=with_state, release_locks=unlock)
    for with_state in (False, True)
    for unlock in (False, True)
}


def complete(
    connection: Connection,
    task: TaskRow,
    output: dict[str, Any],
    metrics: list[dict[str, Any]],
    *,
    release_locks: bool = False,
    last_phase: PhaseWrite | None = None,
) -> bool:
    """Mark the task completed, write its metrics and the agent's health, in one statement.

    With ``last_phase`` (numbered: a standalone task) the same statement
    writes that phase's state, as the phase ends and the task completes at
    once; if the number was taken meanwhile (a task submitted as this one's
    child shares its workflow), the state is written again under the
    workflow's lock.  With ``release_locks`` it also drops the session's
    advisory locks (saving the runner a round trip); a second delivery that
    slips in before the commit still waits on the row and then finds it
    completed.
    """
    params: dict[str, Any] = {"id": task.id, "output": Jsonb(output), "metrics": Jsonb(metrics)}
    if last_phase is not None:
        if last_phase.sequence is None:
            raise ValueError("the completion writes only a numbered last phase")
        params |= last_phase.params(task)
    row = run(connection, _COMPLETIONS[(last_phase is not None, release_locks)], params)
    if row is None or not row["completed"]:
        return False
    if last_phase is not None and row["written"] == 0:
        _write_state_locked(connection, params)
    return True
