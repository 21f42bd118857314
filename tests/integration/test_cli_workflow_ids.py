"""Workflow ids on the command line lead somewhere: no ``workflow`` line that is a dead end.

Every task has a ``workflow_id``; a standalone task's is its own id.
``toolbox task show`` printed it as a ``workflow`` line for every task, and
``toolbox workflow show`` of it then said ``no workflow``.  Now the line is
printed only for a task of a workflow, and ``workflow show`` / ``cancel``
of a task's id say what the id is and give the command that takes it.
"""

from __future__ import annotations

import json
import uuid

from sqlalchemy import Engine

from tests.integration.test_cli import toolbox
from tests.integration.test_cli_errors import add_task, one_error_line
from workers import client, workflows

REQUEST = {"subject": "science", "grade_level": 6, "topic": "volcanoes"}


def workflow_lines(task_id: uuid.UUID | str, env: dict[str, str]) -> list[str]:
    """The ``workflow`` lines of ``toolbox task show`` (human output)."""
    shown = toolbox("task", "show", str(task_id), env=env)
    assert shown.returncode == 0, shown.stderr
    return [" ".join(line.split()) for line in shown.stdout.splitlines() if "workflow" in line]


def test_a_standalone_task_shows_no_workflow_and_is_pointed_to_task_commands(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    task_id = str(uuid.uuid4())
    add_task(engine, task_id)
    assert workflow_lines(task_id, toolbox_env) == []
    as_json = toolbox("task", "show", task_id, "--json", env=toolbox_env)
    assert json.loads(as_json.stdout)["workflow_id"] == task_id  # the JSON keeps it
    standalone = f"error: {task_id} is a standalone echo task, not a workflow"
    for given in (task_id, task_id[:8]):
        shown = one_error_line(toolbox("workflow", "show", given, env=toolbox_env))
        assert shown == f"{standalone}; to see it: toolbox task show {task_id}"
        cancelled = one_error_line(toolbox("workflow", "cancel", given, env=toolbox_env))
        assert cancelled == f"{standalone}; to cancel it: toolbox task cancel {task_id}"
    assert client.get_task(task_id).status == "pending"  # nothing was cancelled
    grouped = client.submit("echo", {}, workflow_id=uuid.uuid4())  # a free grouping id
    assert workflow_lines(grouped, toolbox_env) == []
    line = one_error_line(toolbox("workflow", "show", str(grouped), env=toolbox_env))
    assert line == (
        f"error: {grouped} is an echo task, not a workflow; to see it: toolbox task show {grouped}"
    )


def test_a_task_of_a_workflow_shows_its_workflow_and_is_pointed_to_it(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    workflow_id = workflows.generate(REQUEST)
    child = uuid.uuid4()
    add_task(engine, str(child), agent="content", parent=workflow_id)
    assert workflow_lines(workflow_id, toolbox_env) == [f"workflow {workflow_id}"]
    assert workflow_lines(child, toolbox_env) == [f"workflow {workflow_id}"]
    of_workflow = f"error: {child} is a content task of workflow {workflow_id}, not a workflow"
    shown = one_error_line(toolbox("workflow", "show", str(child), env=toolbox_env))
    assert shown == f"{of_workflow}; to see the workflow: toolbox workflow show {workflow_id}"
    cancelled = one_error_line(toolbox("workflow", "cancel", str(child)[:8], env=toolbox_env))
    assert cancelled == (
        f"{of_workflow}; to cancel the workflow: toolbox workflow cancel {workflow_id}"
    )
    assert workflows.get(workflow_id).status == "pending"
    shown_root = toolbox("workflow", "show", str(workflow_id), env=toolbox_env)
    assert shown_root.returncode == 0, shown_root.stderr
    missing = uuid.uuid4()
    line = one_error_line(toolbox("workflow", "show", str(missing), env=toolbox_env))
    assert line == f"error: no workflow {missing}"


def test_a_prefix_of_several_standalone_tasks_matches_several(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """``workflow show 55e2`` said "no workflow id starts with '55e2'" of two standalone tasks
    (each its own workflow id), while ``task show 55e2`` listed both."""
    first, second = "55e21111-0000-4000-8000-000000000001", "55e22222-0000-4000-8000-000000000002"
    add_task(engine, first)
    add_task(engine, second)
    several = f"error: '55e2' matches several tasks ({first}, {second}); give more of the id"
    assert one_error_line(toolbox("task", "show", "55e2", env=toolbox_env)) == several
    for command in ("show", "cancel"):
        assert one_error_line(toolbox("workflow", command, "55e2", env=toolbox_env)) == several
    one = one_error_line(toolbox("workflow", "show", "55e21", env=toolbox_env))
    assert one == (
        f"error: {first} is a standalone echo task, not a workflow; to see it: toolbox task show"
        f" {first}"
    )
    missing = one_error_line(toolbox("workflow", "show", "55e3", env=toolbox_env))
    assert missing == "error: no workflow id starts with '55e3'"
    assert {client.get_task(first).status, client.get_task(second).status} == {"pending"}
