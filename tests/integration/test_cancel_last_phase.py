"""Cancelling a running task says truthfully what will happen: a task in its last phase completes.

A runner looks for a cancel request at each phase boundary but the last,
so a task already running its last phase completes.  ``toolbox task
cancel`` said ``running (stops at its next phase)`` all the same, and the
task then completed.  Each phase is written to ``agent_states`` as it ends,
so the row tells: every phase but the last written means the last one runs.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from sqlalchemy import Engine, text

from agents.base import PHASES
from agents.leases import task_key
from tests.integration.test_cli import toolbox
from tests.integration.test_cli_errors import add_task
from tests.workers import StartWorker, wait_for
from workers import client, workflows

REQUEST = {"subject": "science", "grade_level": 6, "topic": "volcanoes"}
LAST_PHASE = "running its last phase: it will complete (a cancel stops a task only between phases)"
NEXT_BOUNDARY = (
    "running: asked to stop at its next phase boundary (a task already in its last phase completes)"
)


def running_task(
    engine: Engine, phases_done: int, agent: str = "echo", parent: uuid.UUID | None = None
) -> uuid.UUID:
    """A running task (of ``parent``'s workflow) whose first ``phases_done`` phases have ended."""
    task_id = uuid.uuid4()
    add_task(engine, str(task_id), agent=agent, status="running", parent=parent)
    with engine.begin() as connection:
        for phase in PHASES[:phases_done]:  # numbered per workflow, as a runner does
            connection.execute(
                text(
                    "INSERT INTO agent_states (task_id, agent_id, workflow_id, state_type,"
                    " state_data, sequence_number) SELECT id, agent_id, workflow_id, :phase,"
                    " '{}', (SELECT count(*) + 1 FROM agent_states s"
                    " WHERE s.workflow_id = t.workflow_id) FROM agent_tasks t WHERE id = :id"
                ),
                {"id": task_id, "phase": phase.value},
            )
    return task_id


def cancel_lines(task_id: uuid.UUID, env: dict[str, str]) -> list[str]:
    """What ``toolbox task cancel`` prints; it exits 0 for a running task, as documented."""
    result = toolbox("task", "cancel", str(task_id), env=env)
    assert result.returncode == 0, (result.stdout, result.stderr)
    return result.stdout.splitlines()


@contextmanager
def held_leases(engine: Engine, *task_ids: uuid.UUID) -> Iterator[None]:
    """The tasks' leases, held as live workers' runners hold them (a free one: no worker)."""
    with engine.connect() as connection:
        for task_id in task_ids:
            connection.execute(text("SELECT pg_advisory_lock(:k)"), {"k": task_key(task_id)})
        connection.commit()
        try:
            yield
        finally:
            connection.execute(text("SELECT pg_advisory_unlock_all()"))
            connection.commit()


def test_the_cli_says_a_task_in_its_last_phase_completes(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    midway = running_task(engine, 2)
    last = running_task(engine, len(PHASES) - 1)
    workflow_id = workflows.generate(REQUEST)
    child = running_task(engine, len(PHASES) - 1, agent="content", parent=workflow_id)
    waiting_child = running_task(engine, 1, agent="quiz", parent=workflow_id)
    with held_leases(engine, midway, last, child, waiting_child):
        assert cancel_lines(midway, toolbox_env) == [f"{midway} {NEXT_BOUNDARY}"]
        assert cancel_lines(last, toolbox_env) == [f"{last} {LAST_PHASE}"]
        assert cancel_lines(child, toolbox_env) == [
            f"{child} {LAST_PHASE}",
            f"its workflow {workflow_id} is still running;"
            f" to stop it: toolbox workflow cancel {workflow_id}",
        ]
        assert not workflows.get(workflow_id).finished  # the cancel did not end it
        assert cancel_lines(waiting_child, toolbox_env) == [f"{waiting_child} {NEXT_BOUNDARY}"]


@pytest.mark.worker
def test_a_task_cancelled_in_its_last_phase_completes(start_worker: StartWorker) -> None:
    """What the CLI says is what the runner does."""
    start_worker()
    task_id = client.submit("echo", {"phase_seconds": 1.0})
    wait_for(lambda: len(client.get_task(task_id).states) == len(PHASES) - 1, timeout=60)
    found = client.cancel(task_id)
    assert (found.status, found.in_last_phase) == ("running", True)
    view = client.wait(task_id, timeout=30)
    assert view.status == "completed" and len(view.states) == len(PHASES)
    assert not view.in_last_phase
    early = client.submit("echo", {"phase_seconds": 1.0})
    wait_for(lambda: client.get_task(early).status == "running", timeout=60)
    assert not client.cancel(early).in_last_phase
    assert client.wait(early, timeout=30).status == "cancelled"
