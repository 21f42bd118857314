"""The reaper's lock order on a workflow's task (no worker: the rows are set up by hand)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text

from agents import recovery
from tests.integration.test_workflow import REQUEST, scalar, status_of
from tests.workers import wait_for
from workers import client, workflows


def reap(engine: Engine) -> recovery.Recovered:
    """One reaper run in a transaction of its own, as ``toolbox.maintenance.reaper`` does."""
    with engine.connect() as lease_connection, engine.begin() as connection:
        lease = lease_connection.execution_options(isolation_level="AUTOCOMMIT")
        return recovery.orphans(connection, lease, max_deliveries=5)


def row_is_free(engine: Engine, task_id: uuid.UUID) -> bool:
    """Nobody else holds the row's lock (tried without waiting, and let go at once)."""
    with engine.connect() as probe:
        taken = probe.execute(
            text("SELECT id FROM agent_tasks WHERE id = :id FOR UPDATE SKIP LOCKED"),
            {"id": task_id},
        ).scalar_one_or_none()
        probe.rollback()
    return taken is not None


@pytest.mark.parametrize(("deliveries", "outcome"), [(1, "queued"), (5, "failed")])
def test_the_reaper_locks_a_workflow_task_after_its_workflow_root(
    engine: Engine, toolbox_env: dict[str, str], deliveries: int, outcome: str
) -> None:
    """Every transaction that changes a workflow's tasks locks its root first; so does the reaper.

    The reaper locked the orphan's row first and the root only to fail it: a
    workflow's transaction holding the root and waiting for that row made a
    cycle, and PostgreSQL aborted the reaper's run.  Now, with the root held
    elsewhere, the reaper waits for it and holds nothing of the workflow yet.
    """
    workflow_id = workflows.generate(REQUEST)
    orphan = client.submit(
        "echo", {"message": "orphan"}, parent_task_id=workflow_id, workflow_id=workflow_id
    )
    with engine.begin() as connection:  # left running by a dead worker: its lease is free
        connection.execute(
            text(
                "UPDATE agent_tasks SET status = 'running', started_at = now(),"
                " delivery_count = :deliveries WHERE id = :id"
            ),
            {"id": orphan, "deliveries": deliveries},
        )
    with engine.connect() as root, ThreadPoolExecutor(1) as pool:
        root.execute(
            text("SELECT id FROM agent_tasks WHERE id = :id FOR UPDATE"), {"id": workflow_id}
        )
        holder = root.execute(text("SELECT pg_backend_pid()")).scalar_one()
        blocked = (
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND :holder = ANY(pg_blocking_pids(pid))"
        )
        reaping = pool.submit(reap, engine)
        try:
            wait_for(lambda: scalar(engine, blocked, holder=holder) == 1, 10)
            assert row_is_free(engine, orphan), "the reaper locked the task before its root"
        finally:
            root.rollback()
        found = reaping.result(timeout=30)
    assert status_of(orphan) == outcome
    if outcome == "failed":
        assert found == recovery.Recovered(redispatch=[], failed=[orphan])
        view = workflows.get(workflow_id)
        assert view.status == "failed" and "worker died 5 times" in (view.error or "")
    else:
        assert found == recovery.Recovered(redispatch=[orphan], failed=[])
