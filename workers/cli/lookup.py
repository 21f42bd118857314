"""What ``toolbox task`` and ``toolbox workflow`` share: ids, durations, reports.

List filters are checked by ``workers.views`` for the CLI and the Python API alike.
"""

from __future__ import annotations

import uuid

import typer

from agents.workflow import ROOT_AGENT
from models.agents import TASK_STATUSES
from models.ids import resolve_id
from workers.db import get_engine
from workers.views import TaskView

ID_HELP = "Id, or a unique prefix of it (4+ characters)"
STATUS_HELP = "Filter by status: " + ", ".join(TASK_STATUSES)


def task_id(value: str) -> uuid.UUID:
    with get_engine().connect() as connection:
        return resolve_id(connection, value, table="agent_tasks", noun="task")


def workflow_id(value: str) -> uuid.UUID:
    """A workflow is its root task: a supervisor task that is its own workflow."""
    with get_engine().connect() as connection:
        return resolve_id(
            connection, value, table="agent_tasks", noun="workflow",
            where="workflow_id = id AND agent_id IN"
                  f" (SELECT id FROM ai_agents WHERE agent_type = '{ROOT_AGENT}')",
        )  # fmt: skip


def warn(message: str) -> None:
    """A yellow ``warning: ...`` line on stderr, which leaves stdout to the result (``--json``)."""
    typer.secho(f"warning: {message}", fg="yellow", err=True)


def report_cancel(
    found: uuid.UUID,
    before: str,
    after: str,
    *,
    running: str | None = None,
    workflow: uuid.UUID | None = None,
) -> None:
    """Print what ``cancel`` did (status ``before`` -> ``after``); exit 1 if nothing could be.

    ``running`` is the note for a run that stops later (a task at its next phase);
    ``workflow``, a workflow that goes on although the task had finished.
    """
    if after == "running" and running is not None:
        typer.echo(f"{found} running ({running})")
    elif before == "cancelled":
        typer.echo(f"{found} cancelled (was already cancelled; nothing to do)")
    elif after in {"completed", "failed"}:
        typer.echo(f"{found} {after} (had already finished; nothing was cancelled)")
        if workflow is not None:
            typer.echo(
                f"its workflow {workflow} is still running;"
                f" to stop it: toolbox workflow cancel {workflow}"
            )
        raise typer.Exit(1)
    else:
        typer.echo(f"{found} {after}")


def duration(view: TaskView) -> str | None:
    """Run time from ``started_at``/``completed_at``; ``duration_seconds`` rounds up to 1s."""
    if view.started_at is None or view.completed_at is None:
        return None if view.duration_seconds is None else f"{view.duration_seconds}s"
    return format_seconds((view.completed_at - view.started_at).total_seconds())


def format_seconds(seconds: float) -> str:
    """``6 ms``, ``0.4 ms``, ``2.35s``, ``3m 05.2s``, ``1h 02m 03s``."""
    seconds = max(seconds, 0.0)
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:.0f} ms" if ms >= 10 else f"{ms:.1f}".rstrip("0").rstrip(".") + " ms"
    if seconds < 60:
        return f"{seconds:.2f}s"
    minutes, rest = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h {minutes:02d}m {rest:02.0f}s" if hours else f"{minutes}m {rest:04.1f}s"
