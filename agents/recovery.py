"""Finding agent tasks that fell through the cracks (no Celery here).

- *Undispatched*: committed rows whose message was never sent (broker down,
  process killed between commit and send).
- *Lost in the broker*: rows queued or retrying for longer than the
  redispatch age, whose message Redis lost (it may keep nothing on disk) or
  a killed worker had reserved without starting.  Each re-send moves
  ``dispatched_at``, so a long backlog costs at most one extra message per
  row and age; the claim makes the duplicate harmless.
- *Orphaned*: rows ``running`` whose lease is free: their worker died and
  the broker did not hand the message to anyone else yet.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

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


def lost_in_broker(
    connection: Connection, *, older_than: float, limit: int = 500
) -> list[uuid.UUID]:
    rows = connection.execute(
        text(
            "SELECT id FROM agent_tasks WHERE (status = 'queued' AND dispatched_at <"
            " now() - make_interval(secs => :age)) OR (status = 'retrying' AND not_before <"
            " now() - make_interval(secs => :age)) ORDER BY created_at LIMIT :limit"
            " FOR UPDATE SKIP LOCKED"
        ),
        {"age": older_than, "limit": limit},
    ).scalars()
    return list(rows)


def orphans(
    connection: Connection, lease: Connection, *, max_deliveries: int, limit: int = 200
) -> Recovered:
    """Running rows nobody holds: send them again, or fail them if they crash-loop."""
    rows = connection.execute(
        text(
            "SELECT id, delivery_count FROM agent_tasks WHERE status = 'running'"
            " ORDER BY heartbeat_at NULLS FIRST LIMIT :limit FOR UPDATE SKIP LOCKED"
        ),
        {"limit": limit},
    ).all()
    again, failed = [], []
    for task_id, deliveries in rows:
        if not leases.lease_is_free(lease, task_id):
            continue
        if deliveries >= max_deliveries:
            error = RedeliveryExceeded(
                f"worker died {deliveries} times while running this task (limit {max_deliveries})"
            )
            details = lifecycle.error_details(error, retryable=False)
            task = lifecycle.load(connection, task_id)
            if task is not None and workflow.involved(task):
                # after the row's lock, unlike the runner's root-first order: a cycle with
                # a workflow's own transaction aborts this one, redone at the next run
                workflow.end_task(connection, task, "failed", details)
            else:
                lifecycle.finish_unsuccessfully(connection, task_id, "failed", details)
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
