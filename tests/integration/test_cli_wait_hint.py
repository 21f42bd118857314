"""``--wait`` says so when no worker will take the work, and only then."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import Engine

from tests.integration.test_cli import toolbox
from tests.integration.test_workflow import held_slot
from tests.workers import StartWorker
from workers.cli.idle import GRACE_SECONDS

TIMEOUT = str(int(GRACE_SECONDS) + 4)
HINT = "no worker consumes the agents queue (start one with: toolbox up)"


def hints(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if HINT in line]


def test_a_wait_with_no_worker_says_how_to_start_one(toolbox_env: dict[str, str]) -> None:
    task = toolbox("task", "submit", "echo", "--wait", "--timeout", TIMEOUT, env=toolbox_env)
    assert task.returncode == 2  # an error, as every timeout of a wait
    (hint,) = hints(task.stderr)
    assert hint.startswith("warning: the task ")
    left = re.search(r"; still waiting up to (\d+)s more$", hint)  # not the whole --timeout
    assert left and int(left.group(1)) <= int(TIMEOUT) - GRACE_SECONDS, hint
    assert task.stderr.strip().splitlines()[-1].endswith(f"queued after {TIMEOUT}s (0% done)")
    workflow = toolbox(
        "workflow", "generate", "--subject", "science", "--grade", "6", "--topic", "volcanoes",
        "--wait", "--timeout", TIMEOUT, "--json", env=toolbox_env,
    )  # fmt: skip
    assert workflow.returncode == 2 and workflow.stdout == ""
    (hint,) = hints(workflow.stderr)
    assert hint.startswith("warning: the workflow ")


def test_a_workflow_wait_leaves_stdout_to_the_result(toolbox_env: dict[str, str]) -> None:
    """The progress bar and its line endings go to stderr: a timed-out wait prints nothing."""
    workflow = toolbox(
        "workflow", "generate", "--subject", "science", "--grade", "5", "--topic", "plants",
        "--wait", "--timeout", "1", env=toolbox_env,
    )  # fmt: skip
    assert workflow.returncode == 2, workflow.stderr
    assert workflow.stdout == ""
    (line,) = workflow.stderr.splitlines()  # no blank line left by the bar's last frame
    assert line.endswith("still pending (not started) after 1s")


@pytest.mark.worker
def test_a_worker_on_other_queues_only_gets_the_hint_too(
    start_worker: StartWorker, toolbox_env: dict[str, str]
) -> None:
    start_worker(queues="lms,maintenance")
    task = toolbox("task", "submit", "echo", "--wait", "--timeout", TIMEOUT, env=toolbox_env)
    assert task.returncode == 2 and len(hints(task.stderr)) == 1


@pytest.mark.worker
def test_a_task_waiting_for_a_slot_gets_no_hint(
    start_worker: StartWorker, engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """The agents queue has a worker; the task waits ``queued`` for its agent's only slot."""
    with held_slot(engine, "echo"):
        start_worker()
        task = toolbox("task", "submit", "echo", "--wait", "--timeout", TIMEOUT, env=toolbox_env)
    assert task.returncode == 2
    assert "still queued after" in task.stderr and "warning" not in task.stderr
