"""What ``toolbox task`` and ``toolbox workflow`` share: ids, durations, reports.

List filters are checked by ``workers.views`` for the CLI and the Python API alike.
"""

from __future__ import annotations

import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import typer
from sqlalchemy import Connection, Row, text

from agents.workflow import ROOT_AGENT
from models.agents import TASK_STATUSES
from models.errors import NotFound
from models.ids import article, resolve_id
from workers.db import get_engine
from workers.views import TaskView

ID_HELP = "Id, or a unique prefix of it (4+ characters)"
STATUS_HELP = "Filter by status: " + ", ".join(TASK_STATUSES)

_IS_WORKFLOW = (
    f"workflow_id = id AND agent_id IN (SELECT id FROM ai_agents WHERE agent_type = '{ROOT_AGENT}')"
)
"""The condition on an ``agent_tasks`` row that makes it a workflow (its root)."""

_TASK = text(
    "SELECT t.agent_type, t.workflow_id, t.workflow_id = t.id AS own_workflow,"
    f" EXISTS (SELECT FROM agent_tasks WHERE id = t.workflow_id AND {_IS_WORKFLOW}) AS in_workflow"
    " FROM (SELECT a.agent_type, t.id, coalesce(t.workflow_id, t.id) AS workflow_id"
    " FROM agent_tasks t JOIN ai_agents a ON a.id = t.agent_id WHERE t.id = :id) t"
)
"""A task's agent type and workflow id, and whether that id is its own and names a workflow."""


def task_id(value: str) -> uuid.UUID:
    with get_engine().connect() as connection:
        return resolve_id(connection, value, table="agent_tasks", noun="task")


def workflow_id(value: str, *, command: Literal["show", "cancel"]) -> uuid.UUID:
    """A workflow is its root task: a supervisor task that is its own workflow.

    Every task has a workflow id (a standalone task's is its own), so a
    user may well give a task's: that is ``NotFound`` saying what the task
    is and which command takes it (``toolbox task`` or its workflow's).
    """
    with get_engine().connect() as connection:
        try:
            found = resolve_id(
                connection, value, table="agent_tasks", noun="workflow", where=_IS_WORKFLOW
            )
        except NotFound:
            task = _task_prefix(connection, value)
            if task is None:
                raise
            found = task
        problem = _not_a_workflow(connection, found, command)
    if problem is not None:
        raise NotFound(problem)
    return found


def workflow_of(task: uuid.UUID) -> uuid.UUID | None:
    """The workflow the task is part of, None if it is in none (a standalone task)."""
    with get_engine().connect() as connection:
        row = _task_row(connection, task)
    return row.workflow_id if row is not None and row.in_workflow else None


def _task_row(connection: Connection, task: uuid.UUID) -> Row[Any] | None:
    return connection.execute(_TASK, {"id": task}).one_or_none()


def _task_prefix(connection: Connection, value: str) -> uuid.UUID | None:
    """The one task ``value`` names (an id prefix), None if it names none.

    A prefix of several tasks (none a workflow) is ``ValidationFailed`` listing
    them, as ``toolbox task`` says: "no workflow id starts with" it was untrue.
    """
    try:
        return resolve_id(connection, value, table="agent_tasks", noun="task")
    except NotFound:
        return None


def _not_a_workflow(connection: Connection, found: uuid.UUID, command: str) -> str | None:
    """Why ``found`` is no workflow and which command takes it; None if it is one or no task."""
    row = _task_row(connection, found)
    if row is None or (row.in_workflow and row.own_workflow):
        return None  # a workflow, or no task at all: the workflow's own lookup says so
    verb = "see" if command == "show" else command
    if row.in_workflow:
        what = f"{article(row.agent_type)} {row.agent_type} task of workflow {row.workflow_id}"
        target = f"the workflow: toolbox workflow {command} {row.workflow_id}"
    else:
        standalone = "a standalone" if row.own_workflow else article(row.agent_type)
        what = f"{standalone} {row.agent_type} task"
        target = f"it: toolbox task {command} {found}"
    return f"{found} is {what}, not a workflow; to {verb} {target}"


def warn(message: str) -> None:
    """A yellow ``warning: ...`` line on stderr, which leaves stdout to the result (``--json``)."""
    typer.secho(f"warning: {message}", fg="yellow", err=True)


TERMINATED = 128 + signal.SIGTERM
"""The exit status ``main()`` gives a command that SIGTERM ends (its ``SystemExit``)."""


@contextmanager
def told_if_interrupted(noun: Literal["task", "workflow"], found: uuid.UUID) -> Iterator[None]:
    """Around a ``--wait``: Ctrl-C or SIGTERM stops the wait, not the work; one line says so.

    The id is printed only once the wait ends, so an interrupted wait left the
    user nothing to follow or cancel it with.  The line goes to stderr (stdout
    stays the result's, empty); the exit status stays 130 (143 for SIGTERM).
    """
    try:
        yield
    except (KeyboardInterrupt, SystemExit) as exc:
        if isinstance(exc, SystemExit) and exc.code != TERMINATED:
            raise
        warn(
            f"stopped waiting; {noun} {found} goes on running (follow it: toolbox {noun} show"
            f" {found}; stop it: toolbox {noun} cancel {found})"
        )
        raise


ORPHANED = "(it was running, but no worker held it: cancelled at once)"


def report_cancel(
    found: uuid.UUID,
    before: str,
    after: str,
    *,
    running: str | None = None,
    workflow: uuid.UUID | None = None,
    orphaned: bool = False,
) -> None:
    """Print what ``cancel`` did (status ``before`` -> ``after``); exit 1 if nothing could be.

    ``running`` is the line for a task still running (``running: asked to stop ...``);
    ``workflow``, a workflow that goes on although the cancel did not stop the
    task (it had finished, or will complete); ``orphaned``, a running task
    that no worker held, cancelled at once.
    """
    if orphaned:
        typer.echo(f"{found} {after} {ORPHANED}")
    elif after == "running" and running is not None:
        typer.echo(f"{found} {running}")
        _workflow_goes_on(workflow)
    elif before == "cancelled":
        typer.echo(f"{found} cancelled (was already cancelled; nothing to do)")
    elif after in {"completed", "failed"}:
        typer.echo(f"{found} {after} (had already finished; nothing was cancelled)")
        _workflow_goes_on(workflow)
        raise typer.Exit(1)
    else:
        typer.echo(f"{found} {after}")


def _workflow_goes_on(workflow: uuid.UUID | None) -> None:
    if workflow is not None:
        stop = f"toolbox workflow cancel {workflow}"
        typer.echo(f"its workflow {workflow} is still running; to stop it: {stop}")


def duration(view: TaskView) -> str | None:
    """Run time from ``started_at``/``completed_at``; ``duration_seconds`` rounds up to 1s."""
    if view.started_at is None or view.completed_at is None:
        return None if view.duration_seconds is None else f"{view.duration_seconds}s"
    return format_seconds((view.completed_at - view.started_at).total_seconds())


def format_seconds(seconds: float) -> str:
    """``6 ms``, ``0.4 ms``, ``2.35s``, ``3m 05.2s``, ``1h 02m 03s``.

    Rounded to what is shown before it is split: 119.96 s is ``2m 00.0s``, never ``1m 60.0s``.
    """
    seconds = max(seconds, 0.0)
    ms = seconds * 1000
    if round(ms) < 1000:
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f}".rstrip("0").rstrip(".") + " ms"
    if round(seconds, 2) < 60:
        return f"{seconds:.2f}s"
    tenths = round(seconds * 10)
    if tenths < 36_000:
        minutes, rest = divmod(tenths, 600)
        return f"{minutes}m {rest / 10:04.1f}s"
    hours, rest = divmod(round(seconds), 3600)
    return f"{hours}h {rest // 60:02d}m {rest % 60:02d}s"
