"""Finding agent tasks that fell through the cracks (no Celery here).

- *Undispatched*: committed rows whose message was never sent (broker down,
  process killed between commit and send).
- *Retries unsent*: ``retrying`` rows whose retry message never left (the
  broker was down when the attempt failed), marked by a NULL
  ``dispatched_at``; they are sent once their ``not_before`` has passed.
- *Lost in the broker*: rows queued or retrying for longer than the
  redispatch age, whose message Redis lost (it may keep nothing on disk) or
  a killed worker had reserved without starting.  Each re-send moves
  ``dispatched_at``, so a long backlog costs at most one extra message per
  row and age; the claim makes the duplicate harmless.  So does a task's
  own re-send when it waits for a concurrency slot, and it moves a
  ``retrying`` row's ``not_before`` too (``hotpath.release_to_wait_for_slot``).
- *Orphaned*: rows ``running`` whose lease is free: their worker died and
  the broker did not hand the message to anyone else yet.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, text

from agents import leases, lifecycle, workflow
from models.errors import RedeliveryExceeded


@dataclass(frozen=True)
class Recovered:
    redispatch: list[uuid.UUID]
    failed: list[uuid.UUID]


def undispatched(connection: Connection, *, older_than: float, limit: int = 500) -> list[uuid.UUID]:
    rows = connection.execute(
        text(
            "SELECT id FROM agent_tasks WHERE status = 'pending' AND dispatched_at IS NULL"
            " AND created_at < now() - make_interval(secs => :age)"
            " ORDER BY created_at LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"age": older_than, "limit": limit},
    ).scalars()
    return list(rows)


def retries_unsent(connection: Connection, *, limit: int = 500) -> list[uuid.UUID]:
    """``retrying`` rows without a retry message (``workers.dispatch.retry_unsent``), due now.

    Not before ``not_before``: the backoff holds.  The relay's send dates the
    row (``dispatched_at``), so each such retry gets one message; a row whose
    send fails again stays unmarked and is tried at the next run.
    """
    rows = connection.execute(
        text(
            "SELECT id FROM agent_tasks WHERE status = 'retrying' AND dispatched_at IS NULL"
            " AND not_before <= now() ORDER BY not_before LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"limit": limit},
    ).scalars()
    return list(rows)


def lost_in_broker(
    connection: Connection,
    *,
    older_than: float,
    limit: int = 500,
    waiting: Mapping[int, int] | None = None,
) -> list[uuid.UUID]:
    """Rows whose message is presumed lost: queued, or retrying past their time, that long.

    A ``retrying`` row whose retry was never sent is not one of them
    (``retries_unsent`` sends it at its time).

    ``waiting`` is the broker's count of agent messages waiting, per task
    priority (``workers.jobs.queues``).  A backlog is no loss: its messages wait
    in their priority's list, first in, first out, so only the oldest rows of
    a priority beyond what its list holds (``queued`` rows minus waiting
    messages) can lack one.  Without it, every ``queued`` row that old is
    presumed lost: a backlog longer than ``older_than`` got a second message
    for each of its rows, and another every ``older_than``.
    """
    params: dict[str, Any] = {"age": older_than, "limit": limit}
    queued = _QUEUED_LOST if waiting is None else _QUEUED_BEYOND_WAITING
    if waiting is not None:
        params |= {"priorities": list(waiting), "waiting": list(waiting.values())}
    rows = connection.execute(
        text(
            f"SELECT id FROM agent_tasks WHERE id IN ({queued}) OR (status = 'retrying' AND"
            " dispatched_at IS NOT NULL AND not_before < now() - make_interval(secs => :age))"
            " ORDER BY created_at LIMIT :limit"
            " FOR UPDATE SKIP LOCKED"
        ),
        params,
    ).scalars()
    return list(rows)


_QUEUED_LOST = (
    "SELECT id FROM agent_tasks WHERE status = 'queued'"
    " AND dispatched_at < now() - make_interval(secs => :age)"
)
_QUEUED_BEYOND_WAITING = """
    SELECT q.id FROM (
        SELECT id, priority, dispatched_at,
               row_number() OVER (PARTITION BY priority ORDER BY dispatched_at, id) AS n,
               count(*) OVER (PARTITION BY priority) AS queued
        FROM agent_tasks WHERE status = 'queued' AND dispatched_at IS NOT NULL) q
    LEFT JOIN unnest(CAST(:priorities AS int[]), CAST(:waiting AS bigint[])) AS w(priority, n)
        ON w.priority = q.priority
    WHERE q.dispatched_at < now() - make_interval(secs => :age)
      AND q.n <= q.queued - coalesce(w.n, 0)"""
"""The oldest ``queued`` rows of each priority beyond the messages its list still holds."""


_RUNNING = text(
    "SELECT id FROM agent_tasks WHERE status = 'running'"
    " ORDER BY heartbeat_at NULLS FIRST LIMIT :limit"
)
_LOCK_RUNNING = text(
    "SELECT delivery_count FROM agent_tasks WHERE id = :id AND status = 'running'"
    " FOR UPDATE SKIP LOCKED"
)


def orphans(
    connection: Connection, lease: Connection, *, max_deliveries: int, limit: int = 200
) -> Recovered:
    """Running rows nobody holds: send them again, or fail them if they crash-loop.

    The rows are listed without locks, so that the workflows of live tasks
    (most running rows) are never locked here; an orphan is then locked and
    checked again (``_lock_orphan``).
    """
    again, failed = [], []
    for task_id in connection.execute(_RUNNING, {"limit": limit}).scalars().all():
        if not leases.lease_is_free(lease, task_id):
            continue
        task = _lock_orphan(connection, lease, task_id)
        if task is None:
            continue
        if task.delivery_count >= max_deliveries:
            error = RedeliveryExceeded(
                f"worker died {task.delivery_count} times while running this task"
                f" (limit {max_deliveries})"
            )
            details = lifecycle.error_details(error, retryable=False)
            workflow.end_task(connection, task, "failed", details)
            failed.append(task_id)
        else:
            connection.execute(
                text(
                    "UPDATE agent_tasks SET status = 'queued', heartbeat_at = NULL WHERE id = :id"
                ),
                {"id": task_id},
            )
            again.append(task_id)
    return Recovered(again, failed)


def _lock_orphan(
    connection: Connection, lease: Connection, task_id: uuid.UUID
) -> lifecycle.TaskRow | None:
    """The task, its row locked, if it is still ``running`` with a free lease.

    A workflow's task is locked after its workflow's root, in the lock order
    of ``agents.workflow``, on the requeue path too: this transaction goes on
    to lock other rows, maybe of the same workflow.  Only the root is waited
    for; a row someone else holds is left for the next run.  A worker that
    takes the lease after the check claims the row only after this
    transaction ends (and finds it queued, or failed).
    """
    task = lifecycle.load(connection, task_id)
    if task is None:
        return None
    if workflow.involved(task):
        workflow.lock_root(connection, task.workflow_id)
    deliveries = connection.execute(_LOCK_RUNNING, {"id": task_id}).scalar_one_or_none()
    if deliveries is None or not leases.lease_is_free(lease, task_id):
        return None
    return replace(task, status="running", delivery_count=deliveries)
