"""Cancelling a finished task of a workflow that goes on (on a real worker).

Cancels that end a workflow are tested with the rest of it in ``test_workflow``.
"""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from tests.integration.test_cli import toolbox
from tests.integration.test_workflow import REQUEST, child, held_slot, status_of
from tests.workers import StartWorker, wait_for
from workers import client, workflows

pytestmark = pytest.mark.worker


def test_cancelling_a_finished_task_of_a_running_workflow_says_how_to_stop_the_workflow(
    start_worker: StartWorker, engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """The supervisor's task completes once it planned the work, long before the workflow.

    ``toolbox task cancel`` on it said only that the task had finished and
    nothing was cancelled, as if there were nothing left to stop.
    """
    with held_slot(engine, "content"):  # the content task waits: the workflow goes on
        start_worker()
        workflow_id = workflows.generate(REQUEST)
        child(workflow_id, "content")
        quiz = child(workflow_id, "quiz")
        wait_for(lambda: status_of(quiz) == "completed", 60)
        assert status_of(workflow_id) == "completed"
        result = toolbox("task", "cancel", str(workflow_id)[:8], env=toolbox_env)
        assert result.returncode == 1, result.stderr  # as for any finished task
        stop = f"toolbox workflow cancel {workflow_id}"
        assert result.stdout.splitlines() == [
            f"{workflow_id} completed (had already finished; nothing was cancelled)",
            f"its workflow {workflow_id} is still running; to stop it: {stop}",
        ]
        assert workflows.get(workflow_id).status == "running"
        found = client.cancel(quiz)  # a finished child: the same
        assert (found.status, found.status_before) == ("completed", "completed")
        assert found.running_workflow_id == workflow_id
        stopped = toolbox(*stop.split()[1:], env=toolbox_env)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stdout.strip() == f"{workflow_id} cancelled"
        assert workflows.get(workflow_id).status == "cancelled"
        again = toolbox("task", "cancel", str(workflow_id), env=toolbox_env)
        assert again.returncode == 1
        assert again.stdout.splitlines() == [
            f"{workflow_id} completed (had already finished; nothing was cancelled)"
        ]
        assert client.cancel(quiz).running_workflow_id is None
