"""A user's request to cancel one agent task (``client.cancel``, ``toolbox task cancel``).

A waiting task (``pending``, ``queued``, ``retrying``) is cancelled at once;
a running one is asked to stop, and its runner ends it at its next phase
boundary (``agents.engine``).  A ``running`` task whose lease is free has no
runner (its worker was stopped or died; the reaper would send it again), so
nobody would ever read that request: it is cancelled at once too.  A task of
a workflow that is cancelled here ends its workflow in the same transaction,
as a runner does for a task it stops (``agents.workflow.end_task``): the
workflow becomes ``cancelled`` and its other waiting tasks are cancelled
with it.

The workflow's root row is locked first, then the task's row (the lock order
of ``agents.workflow``), and the task's status, and for a running task its
lease, are read under that lock: a worker's claim either ran before (the task
is ``running``; its runner holds the lease and gets a cancel request) or
waits for this transaction and then finds the row cancelled.  A worker that
takes a free lease after the check claims the row only after this
transaction ends, and finds it cancelled, as the reaper's do
(``agents.recovery``).

A task that had already finished is left alone, and so is its workflow, which
may well go on: the supervisor's task completes once it has planned the work,
a child once its artifact is written.  ``Found`` names that workflow, so the
user can be told to cancel the workflow instead.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, text

from agents import leases, lifecycle, workflow


@dataclass(frozen=True)
class Found:
    """What ``cancel_task`` found: the task's status before, and a workflow it left running."""

    status: str
    running_workflow_id: uuid.UUID | None = None
    """The task's workflow when the task had already finished and the workflow has not."""
    orphaned: bool = False
    """The task was ``running`` with no worker holding it, and is now cancelled."""


def cancel_task(connection: Connection, task_id: uuid.UUID) -> Found | None:
    """Cancel or ask to stop; what was found, None if there is no such task.

    A running task's lease is tried on ``connection`` itself, which never
    holds a task's lease (a runner keeps its own connection for that).
    Nothing changes for a task that had already finished.  The caller commits.
    """
    task = lifecycle.load(connection, task_id)
    if task is None:
        return None
    in_workflow = workflow.involved(task)
    root = workflow.lock_root(connection, task.workflow_id) if in_workflow else None
    status: str | None = connection.execute(
        text("SELECT status FROM agent_tasks WHERE id = :id FOR UPDATE"), {"id": task_id}
    ).scalar_one_or_none()
    if status is None:
        return None
    orphaned = status == "running" and leases.lease_is_free(connection, task_id)
    if status in lifecycle.WAITING or orphaned:
        if orphaned:
            message = "cancelled while no worker was running it"
        elif status == "retrying":
            message = "cancelled while waiting to retry"
        else:
            message = "cancelled before it started"
        connection.execute(
            text(
                "UPDATE agent_tasks SET status = 'cancelled', completed_at = now(),"
                " cancel_requested_at = now(), error_message = :message,"
                " duration_seconds = CASE WHEN status = 'running'"
                " THEN ceil(extract(epoch FROM now() - started_at))::int ELSE duration_seconds END,"
                f" {lifecycle.PHASES_DONE} WHERE id = :id"
            ),
            {"id": task_id, "message": message},
        )
        if in_workflow:
            workflow.on_ended_unsuccessfully(connection, task, "cancelled", message)
    elif status == "running":
        connection.execute(
            text(
                "UPDATE agent_tasks SET cancel_requested_at = coalesce(cancel_requested_at, now())"
                " WHERE id = :id"
            ),
            {"id": task_id},
        )
    elif workflow.going_on(root):
        return Found(status, task.workflow_id)
    return Found(status, orphaned=orphaned)
