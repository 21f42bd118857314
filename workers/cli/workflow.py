"""``toolbox workflow generate | show | cancel``: learning environments end to end."""

from __future__ import annotations

import json
import time
import uuid
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.tree import Tree

from agents.workflow import ROOT_AGENT
from models.errors import ValidationFailed, WaitTimeout
from workers import workflows
from workers.cli import lookup
from workers.cli.consoles import console as make_console
from workers.cli.failures import not_sent
from workers.cli.flags import in_flag_terms
from workers.cli.idle import hint_if_no_worker
from workers.cli.options import Timeout
from workers.embedded import resolve_servers
from workers.submission import validate_input
from workers.workflows import WorkflowView

console = make_console()
progress_console = Console(stderr=True)
"""The live progress bar's: stdout holds only the result (the tree, or JSON).  Shown only
on a terminal: redirected, its last frame would leave a blank line among the messages."""
workflow_app = typer.Typer(help="Generate learning environments.", no_args_is_help=True)
WorkflowId = Annotated[str, typer.Argument(metavar="ID", help=lookup.ID_HELP)]

FIELD_FLAGS = {
    "subject": "--subject",
    "grade_level": "--grade",
    "topic": "--topic",
    "learning_objectives": "--objective",
    "duration_minutes": "--duration",
    "max_students": "--students",
    "accessibility": "--accessibility",
    "language": "--language",
    "adaptive": "--adaptive",
}
"""The ``EnvironmentRequest`` field each option of ``generate`` fills, to name it in errors."""


def _tree(view: WorkflowView) -> Tree:
    colour = {"completed": "green", "failed": "red", "cancelled": "yellow"}.get(view.status, "cyan")
    tree = Tree(f"[bold]workflow {view.id}[/bold] [{colour}]{view.summary}[/{colour}]")
    nodes: dict[uuid.UUID | None, Tree] = {}
    for task in view.tasks:
        role = (task.context_data or {}).get("role", "plan")
        timing = lookup.duration(task) or "-"
        label = (
            f"{task.agent_type} [dim]{role}[/dim] {task.status} {task.progress_percentage}% "
            f"{timing} [dim]{task.id}[/dim]"
        )
        if task.error_message and task.status != "completed":
            label += f"\n[red]{escape(task.error_message[:120])}[/red]"
        parent = nodes.get(task.parent_task_id, tree)
        nodes[task.id] = parent.add(label)
    if view.artifacts:
        artifacts = tree.add("[bold]artifacts[/bold]")
        for name, value in view.artifacts.items():
            shown = ", ".join(map(str, value)) if isinstance(value, list) else value
            artifacts.add(escape(f"{name}: {shown}"))
    if view.error:
        tree.add(f"[red]{escape(view.error)}[/red]")
    if view.finished and not view.settled:
        tree.add("[dim]tasks still running stop at their next phase and store nothing[/dim]")
    return tree


def _follow(workflow_id: uuid.UUID, timeout: float, *, bar: bool) -> WorkflowView:
    """Poll until the workflow ends, with a progress bar on stderr if ``bar``.

    The bar and its line endings go to stderr, and stdout is left alone (not
    redirected through the bar), so stdout holds the result only.
    """
    deadline = time.monotonic() + timeout
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
    )
    with Progress(
        *columns, console=progress_console, transient=True, redirect_stdout=False, disable=not bar
    ) as progress:
        shown = progress.add_task("planning", total=100)
        while True:
            view = workflows.get(workflow_id)
            progress.update(
                shown,
                completed=view.progress_percentage,
                description=f"{view.stage} (round {view.round})",
            )
            if view.finished:
                return view
            if time.monotonic() > deadline:
                raise WaitTimeout(f"workflow {workflow_id} still {view.summary} after {timeout:g}s")
            time.sleep(0.2)


@workflow_app.command("generate")
def generate(
    subject: Annotated[str, typer.Option(help="e.g. science, math, history")],
    grade: Annotated[int, typer.Option(help="Grade level 1-12")],
    topic: Annotated[str, typer.Option(help="e.g. volcanoes")],
    objective: Annotated[
        list[str] | None, typer.Option("--objective", help="A learning objective (repeatable)")
    ] = None,
    duration: Annotated[int, typer.Option(help="Lesson minutes")] = 30,
    students: Annotated[int, typer.Option(help="Number of students")] = 30,
    accessibility: Annotated[
        list[str] | None, typer.Option(help="e.g. screen_reader, captions (repeatable)")
    ] = None,
    language: Annotated[str, typer.Option(help="Language tag, e.g. en, es")] = "en",
    adaptive: Annotated[bool, typer.Option("--adaptive", help="Adaptive quiz")] = False,
    wait: Annotated[bool, typer.Option("--wait", help="Follow it to the end")] = False,
    timeout: Timeout = 600.0,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Start a workflow for a teacher's request; prints its id (or the result with --wait).

    If the broker cannot take it, a warning on stderr says so: the workflow is
    saved and the relay dispatches it once the broker is back. A Redis that
    refuses TOOLBOX_REDIS_URL's settings is an error (exit status 2), and
    nothing is saved.
    """
    request = {
        "subject": subject,
        "grade_level": grade,
        "topic": topic,
        "learning_objectives": objective or [],
        "duration_minutes": duration,
        "max_students": students,
        "accessibility": accessibility or [],
        "language": language,
        "adaptive": adaptive,
    }
    try:  # before the servers: a typo needs none
        validate_input(ROOT_AGENT, request)
    except ValidationFailed as exc:
        raise in_flag_terms(exc, FIELD_FLAGS) from None
    resolve_servers()
    submitted = workflows.generate_and_report(request)
    workflow_id = submitted.task_id
    if submitted.broker_error is not None:
        waiting = timeout if wait else None
        lookup.warn(not_sent("workflow", workflow_id, submitted.broker_error, waiting=waiting))
    if not wait:
        typer.echo(workflow_id if not as_json else json.dumps({"workflow_id": str(workflow_id)}))
        return
    with (
        lookup.told_if_interrupted("workflow", workflow_id),
        hint_if_no_worker(
            lambda: _started(workflows.get(workflow_id)),
            noun=f"workflow {workflow_id}",
            timeout=timeout,
            quiet=submitted.broker_error is not None,
        ),
    ):
        view = _follow(workflow_id, timeout, bar=not as_json and progress_console.is_terminal)
    _print(view, as_json)
    if view.status != "completed":
        raise typer.Exit(1)


def _started(view: WorkflowView) -> bool:
    return view.finished or any(task.started_at is not None for task in view.tasks)


def _print(view: WorkflowView, as_json: bool) -> None:
    if as_json:
        typer.echo(view.model_dump_json(indent=2))
    else:
        console.print(_tree(view))


@workflow_app.command("show")
def show(
    workflow_id: WorkflowId,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """The task tree with status, progress, timings and the produced artifacts' ids."""
    resolve_servers()
    _print(workflows.get(lookup.workflow_id(workflow_id, command="show")), as_json)


@workflow_app.command("cancel")
def cancel(workflow_id: WorkflowId) -> None:
    """Cancel every unfinished task of the workflow; nothing is marked ready.

    Prints the id and the status. Exit status 0: the workflow is cancelled (now
    or before). Exit status 1: it had already completed or failed, so nothing
    was cancelled.
    """
    resolve_servers()
    found = lookup.workflow_id(workflow_id, command="cancel")
    before = workflows.get(found)
    view = before if before.finished else workflows.cancel(found)
    lookup.report_cancel(view.id, before.status, view.status)
