"""``toolbox task submit | show | list | cancel``: the enqueue API on the command line."""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from models.errors import IdempotencyConflict, ValidationFailed
from workers import client, workflows
from workers.cli import lookup
from workers.cli.consoles import console as make_console
from workers.cli.failures import not_sent
from workers.cli.flags import flag_named, in_flag_terms
from workers.cli.idle import hint_if_no_worker
from workers.cli.options import Timeout
from workers.cli.task_input import INPUT_HELP, check_input, read_input
from workers.embedded import resolve_servers
from workers.submission import SubmitOptions, check_options
from workers.views import MAX_LIST_LIMIT, TaskView, check_status

console = make_console()
task_app = typer.Typer(help="Submit and follow agent tasks.", no_args_is_help=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON")]
NEXT_BOUNDARY = (
    "running: asked to stop at its next phase boundary (a task already in its last phase completes)"
)
LAST_PHASE = "running its last phase: it will complete (a cancel stops a task only between phases)"
OPTION_FLAGS = {"priority": "--priority", "idempotency_key": "--idempotency-key"}
"""The ``SubmitOptions`` field each option of ``submit`` fills, to name it in errors."""
LIST_FLAGS = {"status": "--status", "agent_type": "--agent", "limit": "--limit"}
"""The filter each option of ``list`` fills, to name it in errors."""
LIST_ID_CHARS = 8
"""How much of an id ``task list`` shows: a prefix every command takes."""
TaskId = Annotated[str, typer.Argument(metavar="ID", help=lookup.ID_HELP)]


def _print_json(view: TaskView | list[TaskView]) -> None:
    if isinstance(view, list):
        typer.echo(json.dumps([v.model_dump(mode="json") for v in view], indent=2))
    else:
        typer.echo(view.model_dump_json(indent=2))


def _show(view: TaskView) -> None:
    """The task as a table; a ``workflow`` line only for a task of one (not a dead end)."""
    workflow = lookup.workflow_of(view.id)
    table = Table(show_header=False, box=None)
    rows: list[tuple[str, Any]] = [
        ("task", view.id), ("agent", view.agent_type), ("status", view.status),
        ("progress", f"{view.progress_percentage}%"), ("priority", view.priority),
        ("retries", view.retry_count), ("deliveries", view.delivery_count),
        ("workflow", workflow), ("created", view.created_at),
        ("started", view.started_at), ("completed", view.completed_at),
        ("duration", lookup.duration(view)),
        ("error", view.error_message),
    ]  # fmt: skip
    for name, value in rows:
        if value is not None:
            table.add_row(f"[bold]{name}[/bold]", escape(str(value)))
    console.print(table)
    if view.states:
        states = Table("#", "phase", "quality", "confidence", "ms", title="SPARC states")
        for state in view.states:
            states.add_row(
                str(state.sequence_number), state.state_type, _score(state.quality_score),
                _score(state.confidence_score), str(state.state_data.get("duration_ms", "")),
            )  # fmt: skip
        console.print(states)
    if view.output_data is not None:
        console.print_json(json.dumps(view.output_data))


def _score(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


@task_app.command("submit")
def submit(
    agent: Annotated[str, typer.Argument(help="Agent type, e.g. echo, content, quiz")],
    input_json: Annotated[
        str | None,
        typer.Option(
            "--input",
            metavar="JSON|-|@FILE",
            help=INPUT_HELP,
        ),
    ] = None,
    priority: Annotated[int | None, typer.Option(help="0 (lowest) .. 9 (highest)")] = None,
    idempotency_key: Annotated[str | None, typer.Option(help="Same key, same task")] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it finishes")] = False,
    timeout: Timeout = 300.0,
    as_json: JsonFlag = False,
) -> None:
    """Submit an agent task; prints its id (or the task as JSON).

    --input takes JSON text ('{"message": "hi"}'), - to read it from stdin
    (cat request.json | toolbox task submit content --input -) or @FILE
    (--input @request.json): no shell quoting of JSON needed.

    If the broker cannot take it, a warning on stderr says so: the task is
    saved and the relay dispatches it once the broker is back (exit status 0
    without --wait; with --wait, the wait goes on). A Redis that refuses
    TOOLBOX_REDIS_URL's settings (database number, password) is an error
    line naming the setting, exit status 2, and nothing is saved.
    """
    payload = read_input(input_json)
    check_input(agent, payload, given=input_json is not None)  # a typo needs no servers
    options = SubmitOptions(priority=priority, idempotency_key=idempotency_key)
    try:
        check_options(options)
    except ValidationFailed as exc:
        raise in_flag_terms(exc, OPTION_FLAGS) from None
    resolve_servers()
    try:
        submitted = client.submit_and_report(
            agent, payload, priority=priority, idempotency_key=idempotency_key
        )
    except IdempotencyConflict as exc:
        raise flag_named(exc, OPTION_FLAGS) from None
    task_id = submitted.task_id
    if submitted.broker_error is not None:
        lookup.warn(
            not_sent("task", task_id, submitted.broker_error, waiting=timeout if wait else None)
        )
    if wait:
        with (
            lookup.told_if_interrupted("task", task_id),
            hint_if_no_worker(
                lambda: _started(client.get_task(task_id, states=False)),
                noun=f"task {task_id}",
                timeout=timeout,
                quiet=submitted.broker_error is not None,
            ),
        ):
            view = client.wait(task_id, timeout=timeout)
        _print_json(view) if as_json else _show(view)
        if view.status != "completed":
            raise typer.Exit(1)
    elif as_json:
        _print_json(client.get_task(task_id))
    else:
        typer.echo(str(task_id))


def _started(view: TaskView) -> bool:
    return view.started_at is not None or view.finished


@task_app.command("show")
def show(task_id: TaskId, as_json: JsonFlag = False) -> None:
    """Status, progress, timings, retries, error and SPARC states of a task."""
    resolve_servers()
    view = client.get_task(lookup.task_id(task_id))
    _print_json(view) if as_json else _show(view)


@task_app.command("list")
def list_(
    status: Annotated[str | None, typer.Option(help=lookup.STATUS_HELP)] = None,
    agent: Annotated[str | None, typer.Option(help="Filter by agent type, e.g. echo")] = None,
    limit: Annotated[
        int, typer.Option(min=1, max=MAX_LIST_LIMIT, help="How many tasks, newest first")
    ] = 50,
    as_json: JsonFlag = False,
) -> None:
    """The most recent tasks, newest first; other commands take an id prefix as shown."""
    try:
        status = check_status(status)  # before the servers: a typo needs none
        resolve_servers()
        views = client.list_tasks(status=status, agent_type=agent, limit=limit)
    except ValidationFailed as exc:
        raise flag_named(exc, LIST_FLAGS) from None
    if as_json:
        _print_json(views)
        return
    # The six columns fit in 80 whole; the error, free text, goes under the table,
    # one line each, by the same short id (as `lms list` shows its notes).
    table = Table()
    for column in ("id", "agent", "status", "progress", "retries", "created"):
        table.add_column(column, no_wrap=True)
    errors: list[str] = []
    for view in views:
        short = str(view.id)[:LIST_ID_CHARS]
        table.add_row(
            short, view.agent_type, view.status, f"{view.progress_percentage}%",
            str(view.retry_count), view.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        )  # fmt: skip
        if view.error_message:
            errors.append(f"{short}: {' '.join(view.error_message.split())}")
    console.print(table)
    for line in errors:
        console.print(escape(line), no_wrap=True, overflow="ellipsis")


@task_app.command("cancel")
def cancel(task_id: TaskId) -> None:
    """Cancel a task: at once if it has not started, else at its next phase boundary.

    Prints the id and the status. Exit status 0: the task is cancelled (a
    running task that no worker holds, its worker stopped or dead, at once,
    and the line says so), is running and asked to stop at its next phase
    boundary (one running its last phase completes, and the line says so),
    or was cancelled before.
    Exit status 1: it had already completed or failed, so nothing was
    cancelled. When the task completes or has completed and its workflow
    goes on, a second line gives the command that cancels the workflow.
    """
    resolve_servers()
    view = client.cancel(lookup.task_id(task_id))
    # a task that completes (or had) leaves its workflow running
    workflow = _running_workflow(view.id) if view.in_last_phase else view.running_workflow_id
    lookup.report_cancel(
        view.id,
        view.status_before,
        view.status,
        running=LAST_PHASE if view.in_last_phase else NEXT_BOUNDARY,
        workflow=workflow,
        orphaned=view.orphaned,
    )


def _running_workflow(task: uuid.UUID) -> uuid.UUID | None:
    """The workflow the task is part of, if that has not finished."""
    workflow = lookup.workflow_of(task)
    return workflow if workflow is not None and not workflows.get(workflow).finished else None
