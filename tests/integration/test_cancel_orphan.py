"""Cancelling a running task that no worker holds ends it at once (no worker: rows set up by hand).

A task left ``running`` by a worker that was stopped or died has a free
lease.  ``toolbox task cancel`` asked it to stop at its next phase boundary,
which no runner would ever reach: the row stayed ``running`` until a worker
came back and the reaper sent it again.  A task a live worker holds (its
lease taken) is still asked to stop.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Engine, text

from agents import leases
from tests.integration.test_cancel_last_phase import (
    NEXT_BOUNDARY,
    cancel_lines,
    held_leases,
    running_task,
)
from tests.integration.test_workflow import REQUEST
from tests.integration.test_workflow_reaper import reap
from workers import client, workflows

ORPHANED = "(it was running, but no worker held it: cancelled at once)"


def lease_is_free(engine: Engine, task_id: uuid.UUID) -> bool:
    with engine.connect() as connection:
        return leases.lease_is_free(connection, task_id)


def test_the_cli_cancels_a_running_task_no_worker_holds_at_once(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    orphan = running_task(engine, 2)
    with engine.begin() as connection:  # its worker started it 3 s ago, then was stopped
        connection.execute(
            text("UPDATE agent_tasks SET started_at = now() - interval '3 s' WHERE id = :id"),
            {"id": orphan},
        )
    assert cancel_lines(orphan, toolbox_env) == [f"{orphan} cancelled {ORPHANED}"]
    view = client.get_task(orphan)
    assert view.status == "cancelled" and view.completed_at is not None
    assert view.error_message == "cancelled while no worker was running it"
    assert view.cancel_requested_at is not None and 3 <= (view.duration_seconds or 0) < 60
    assert view.progress_percentage == 40  # its two phases, as a task that fails shows them
    assert lease_is_free(engine, orphan)  # the cancel let go of the lease it tried
    assert reap(engine).redispatch == []  # nothing left for the reaper to send again
    again = cancel_lines(orphan, toolbox_env)
    assert again == [f"{orphan} cancelled (was already cancelled; nothing to do)"]


def test_a_running_task_a_worker_holds_is_asked_to_stop(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    live = running_task(engine, 2)
    with held_leases(engine, live):
        assert cancel_lines(live, toolbox_env) == [f"{live} {NEXT_BOUNDARY}"]
        found = client.cancel(live)
        assert (found.status, found.orphaned) == ("running", False)
    assert found.cancel_requested_at is not None


def test_cancelling_an_orphaned_task_of_a_workflow_ends_the_workflow(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    workflow_id = workflows.generate(REQUEST)
    orphan = running_task(engine, 1, agent="content", parent=workflow_id)
    waiting = client.submit(
        "echo", {"message": "waiting"}, parent_task_id=workflow_id, workflow_id=workflow_id
    )
    live = running_task(engine, 1, agent="terrain", parent=workflow_id)
    with held_leases(engine, live):
        found = client.cancel(orphan)
        assert (found.status_before, found.status, found.orphaned) == (
            "running",
            "cancelled",
            True,
        )
        view = workflows.get(workflow_id)
        assert view.status == "cancelled"
        assert view.error == "content task cancelled: cancelled while no worker was running it"
        assert client.get_task(waiting).status == "cancelled"
        held = client.get_task(live)  # its runner stops it at its next phase boundary
        assert held.status == "running" and held.cancel_requested_at is not None
