"""``toolbox lms add | list | sync | status | rotate-keys``; the rest (``update``,
``disable``, ``enable``, ``assignments``, ``link``, ``unlink``): ``lms_edit``."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from types import FrameType
from typing import Annotated, Any

import typer
from rich import box
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Session

from lms.registry import PLATFORMS
from lms.schedule import claim_now
from lms.status import (
    IntegrationDetail,
    IntegrationSummary,
    integration_detail,
    list_integrations,
    recorded_end,
    resolve_id,
)
from lms.store import NewIntegration, add_integration, rotate_secrets, validated
from lms.sync import STOP_WRITE_SECONDS, SyncProgress, SyncReport, run_sync, summary_log
from models.errors import ToolboxError
from models.redaction import redact
from workers.app import app as celery_app
from workers.cli import lms_edit
from workers.cli.consoles import console as make_console
from workers.cli.failures import explain, say_error
from workers.cli.flags import flags_named
from workers.cli.lms_input import (
    ApiKey,
    ApiVersion,
    AuthEndpoint,
    ClientId,
    ClientSecret,
    JsonFlag,
    OptionPairs,
    OptionsJson,
    PrivateKeyFile,
    RefreshToken,
    TokenEndpoint,
    credentials,
    hours,
    json_options,
    pair_options,
    refuse_unknown_options,
)
from workers.cli.logs import unshown
from workers.cli.lookup import warn
from workers.db import get_engine
from workers.embedded import resolve_servers
from workers.jobs.lms_errors import record_sync
from workers.secrets import secret_box

console = make_console()
errors = make_console(stderr=True)
TOOK_OVER = "took over a sync waiting to retry: that retry ends without calling the LMS"
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOPS_HELD_SECONDS = 3 * STOP_WRITE_SECONDS
"""How long after a first Ctrl-C or SIGTERM further ones wait while the stop is recorded
and read back (each bounded by ``STOP_WRITE_SECONDS``); one after that goes through."""
lms_app = typer.Typer(
    help="LMS integrations: add, update, disable/enable, sync, status, quiz links, key rotation.",
    no_args_is_help=True,
)


@lms_app.command("add")
def add(
    platform: Annotated[str, typer.Argument(help=f"One of: {', '.join(PLATFORMS)}")],
    institution: Annotated[str, typer.Option(help="School or district name")],
    base_url: Annotated[
        str, typer.Option(help="The LMS's address, e.g. https://canvas.school.edu")
    ],
    client_id: ClientId = None,
    api_key: ApiKey = None,
    client_secret: ClientSecret = None,
    refresh_token: RefreshToken = None,
    private_key_file: PrivateKeyFile = None,
    token_endpoint: TokenEndpoint = None,
    auth_endpoint: AuthEndpoint = None,
    api_version: ApiVersion = None,
    option: OptionPairs = None,
    options_json: OptionsJson = None,
    frequency_hours: Annotated[
        int, typer.Option(parser=hours, help="Hours between syncs, 1 to 8760")
    ] = 24,
    grade_passback: Annotated[bool, typer.Option(help="Send quiz scores back")] = True,
    roster_sync: Annotated[bool, typer.Option(help="Sync rosters")] = True,
    content_sync: Annotated[bool, typer.Option(help="Sync assignments")] = True,
    as_json: JsonFlag = False,
) -> None:
    """Add an integration; its secrets are stored encrypted."""
    secrets = credentials(
        platform, client_id, api_key, client_secret, refresh_token, private_key_file
    )
    from_json, from_pairs = json_options(options_json), pair_options(option)
    refuse_unknown_options(platform, {"--options-json": from_json, "--option": from_pairs})
    new = NewIntegration(
        platform=platform,
        institution_name=institution,
        base_url=base_url.rstrip("/"),
        credentials=secrets,
        api_version=api_version,
        auth_endpoint=auth_endpoint,
        token_endpoint=token_endpoint,
        options={**from_json, **from_pairs},
        sync_frequency_hours=frequency_hours,
        grade_passback_enabled=grade_passback,
        roster_sync_enabled=roster_sync,
        content_sync_enabled=content_sync,
    )
    with flags_named():
        new = validated(new)  # before any server is asked
    resolve_servers()
    with flags_named(), Session(get_engine()) as session, session.begin():
        row = add_integration(session, new, secret_box)  # refuses the same LMS twice
        integration_id = row.id
    if as_json:
        typer.echo(json.dumps({"id": str(integration_id), "platform": platform}))
        return
    console.print(
        f"added {platform} integration [bold]{integration_id}[/bold] for {escape(institution)}"
    )
    console.print(f"first sync: toolbox lms sync {integration_id} --now")


lms_app.command("update")(lms_edit.update)
lms_app.command("disable")(lms_edit.disable)
lms_app.command("enable")(lms_edit.enable)
lms_app.command("assignments")(lms_edit.assignments)
lms_app.command("link")(lms_edit.link)
lms_app.command("unlink")(lms_edit.unlink)


@lms_app.command("list")
def list_(as_json: JsonFlag = False) -> None:
    """Every integration with its last sync and the grades it still owes."""
    resolve_servers()
    with get_engine().connect() as connection:
        summaries = list_integrations(connection)
    if as_json:
        typer.echo(json.dumps([s.as_dict() for s in summaries], indent=2))
        return
    if not summaries:
        console.print("no LMS integrations yet; add one with `toolbox lms add`")
        return
    console.print("times in UTC; commands take an id prefix (e.g. the first 8 characters)")
    table = Table(box=box.SIMPLE)
    for column in ("id", "platform", "institution", "status", "last sync", "next sync", "grades"):
        table.add_column(column, no_wrap=column != "institution")
    for s in summaries:
        owed = s.passbacks["pending"] + s.passbacks["sending"]
        held = f" ({s.passbacks_held} held)" if s.passbacks_held else ""
        grades = ", ".join(
            part for part in (f"{owed} owed{held}" if owed else "",
                              f"{s.passbacks['failed']} failed" if s.passbacks["failed"] else "")
            if part
        ) or "-"  # fmt: skip
        table.add_row(
            str(s.id)[:8], s.platform, escape(s.institution),
            (s.last_sync_status or "never") if s.is_active else "disabled",
            _when(s.last_sync_at, short=True),
            _when(s.next_sync_at, short=True) if s.is_active else "disabled", grades,
        )  # fmt: skip
    console.print(table)
    for s in summaries:
        if s.sync_run_id:
            console.print(f"{str(s.id)[:8]}: sync running, run id {s.sync_run_id}")
        if s.not_before:
            console.print(f"{str(s.id)[:8]}: the LMS asked (Retry-After) not to be called "
                          f"before {_when(s.not_before)}")  # fmt: skip


@lms_app.command("status")
def status(
    integration: Annotated[
        str | None,
        typer.Argument(
            metavar="ID", help="Integration id (or prefix); without it, every integration"
        ),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Last sync, next sync, data held and grade passbacks of one integration.

    Without an id: every integration, as `toolbox lms list` shows them.
    """
    if integration is None:
        list_(as_json=as_json)
        return
    resolve_servers()
    with get_engine().connect() as connection:
        detail = integration_detail(connection, resolve_id(connection, integration))
    if as_json:
        typer.echo(json.dumps(detail.as_dict(), indent=2))
        return
    s = detail.summary
    table = Table(show_header=False, box=None)
    rows: list[tuple[str, Any]] = [
        ("integration", s.id), ("platform", s.platform), ("institution", s.institution),
        ("base url", s.base_url), ("state", "enabled" if s.is_active else "disabled"),
        ("sync every", f"{s.sync_frequency_hours} h"), ("last sync", _when(s.last_sync_at)),
        ("last status", s.last_sync_status or "never synced"), ("sync run id", s.sync_run_id),
        ("error", s.sync_error_message),
        ("next sync", _when(s.next_sync_at) if s.is_active else "none: `toolbox lms enable`"),
        ("not before", s.not_before and f"{_when(s.not_before)}, as the LMS asked (Retry-After)"),
        *detail.flags.items(), *detail.data.items(),
        ("grade passbacks", _passbacks(s)),
        ("oldest unsent grade", _when(detail.oldest_pending_passback)),
    ]  # fmt: skip
    for name, value in rows:
        if value is not None:
            table.add_row(f"[bold]{name.replace('_', ' ')}[/bold]", escape(str(value)))
    console.print(table)
    _show_restricted(detail)
    for line in detail.recent_passback_errors:
        console.print(f"[yellow]passback[/yellow] {escape(line)}")


def _passbacks(s: IntegrationSummary) -> str:
    """Grades by status; held ones named, or they would look stuck in ``pending``."""
    held = s.passbacks_held
    return ", ".join(
        f"{n} {k}" + (f" ({held} held: course closed in the LMS)" if k == "pending" and held
                      else "")
        for k, n in s.passbacks.items()
    )  # fmt: skip


def _show_restricted(detail: IntegrationDetail) -> None:
    """The courses the LMS keeps closed (restricted by date), at most ``RESTRICTED_SHOWN``."""
    total = detail.data.get("courses_restricted", 0)
    if not total:
        return
    console.print(f"{total} course(s) restricted (closed in the LMS for now, kept as last "
                  "read; their grades are held):")  # fmt: skip
    for course in detail.restricted_courses:
        title = "" if course.title == course.external_id else f" {course.title}"
        console.print(f"  {escape(course.external_id)}{escape(title)}, since {_when(course.since)}",
                      soft_wrap=True)  # fmt: skip
    if total > len(detail.restricted_courses):
        console.print(f"  and {total - len(detail.restricted_courses)} more")


@lms_app.command("sync")
def sync(
    integration: Annotated[str, typer.Argument(metavar="ID", help="Integration id (or prefix)")],
    now: Annotated[bool, typer.Option("--now", help="Run here instead of on a worker")] = False,
    ignore_retry_after: Annotated[
        bool,
        typer.Option(
            "--ignore-retry-after",
            help="Sync even though the LMS asked (Retry-After) not to be called yet",
        ),
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Sync courses, assignments and rosters: queued for the lms workers, or here with --now.

    Refused while the LMS's Retry-After runs (`lms status` shows until when),
    unless --ignore-retry-after.  A queued sync waiting for its retry is taken
    over: this one runs, and the waiting retry ends unrun (the output says so).
    A refused sync (disabled, one already running, Retry-After) starts nothing:
    one error line, exit status 1, and nothing on stdout, with --json too.
    """
    resolve_servers()
    engine = get_engine()
    with engine.begin() as connection:
        integration_id = resolve_id(connection, integration)
        claim = claim_now(connection, integration_id, ignore_not_before=ignore_retry_after)
    if not claim.claimed:  # one line, never wrapped at the terminal's width; stdout stays empty
        say_error(f"sync of {integration_id} not started: {claim.reason}")
        raise typer.Exit(1)
    if not now:
        try:
            message = celery_app.send_task(
                "toolbox.lms.sync",
                args=[str(integration_id)],
                kwargs={"ignore_not_before": ignore_retry_after, "run_id": str(claim.run_id)},
            )
        except Exception as exc:  # the broker: the claim stays and beat takes it up when stale
            problem = explain(exc, embedded_database=False) or type(exc).__name__
            raise ToolboxError(
                f"could not queue the sync: {problem}; run it here with --now, "
                "or beat retries it within 15 minutes"
            ) from None
        if as_json:
            typer.echo(json.dumps({"integration_id": str(integration_id), "queued": True,
                                   "task_id": message.id,
                                   "took_over_retry": claim.took_over_retry}))  # fmt: skip
            return
        console.print(f"sync of {integration_id} queued on the lms queue (task {message.id})")
        if claim.took_over_retry:
            console.print(TOOK_OVER)
        console.print(f"follow it with: toolbox lms status {integration_id}")
        return
    if claim.took_over_retry and not as_json:
        console.print(TOOK_OVER)
    report = _sync_here(integration_id, claim.run_id, ignore_not_before=ignore_retry_after)
    if as_json:
        shown = {**_report_json(report), "took_over_retry": claim.took_over_retry}
        typer.echo(json.dumps(shown, indent=2))
        if report.status != "success" and report.message:  # stdout is the script's
            warn(f"sync of {integration_id} {report.status}: {_unsaid(report)}")
    else:
        _show_report(report)
    if report.status != "success":
        raise typer.Exit(1)


@lms_app.command("rotate-keys")
def rotate_keys() -> None:
    """Re-encrypt every stored LMS secret with the newest key of TOOLBOX_SECRET_KEYS."""
    resolve_servers()
    box = secret_box()
    with Session(get_engine()) as session, session.begin():
        report = rotate_secrets(session, box)
    console.print(
        f"re-encrypted {report.rotated} secret(s) with the newest key "
        f"({report.already_current} already current, {report.integrations} integration(s))"
    )
    if box.key_count > 1:
        console.print("every secret now opens with the newest key; older keys can be removed")


def _sync_here(
    integration_id: uuid.UUID, run_id: uuid.UUID | None, *, ignore_not_before: bool
) -> SyncReport:
    progress = Progress(
        TextColumn("syncing courses"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=errors, transient=False, disable=not errors.is_terminal,  # not into a log
    )  # fmt: skip
    with progress:
        task = progress.add_task("sync", total=None)

        def advance(step: SyncProgress) -> None:
            progress.update(task, completed=step.done, total=step.total)

        with _later_stops_held(), unshown(summary_log), _said_if_stopped(integration_id, run_id):
            report = run_sync(  # the report printed next says what the summary line would
                get_engine(),
                integration_id,
                secrets=secret_box,
                progress=advance,
                ignore_not_before=ignore_not_before,
                run_id=run_id,
            )
    record_sync(get_engine(), report)
    return report


@contextlib.contextmanager
def _later_stops_held(seconds: float = STOPS_HELD_SECONDS) -> Iterator[None]:
    """The first Ctrl-C or SIGTERM stops the sync as before; those after it wait while the
    stop is recorded, for ``seconds`` at most.

    ``timeout 10 toolbox lms sync ID --now`` signals the command, then its process
    group: the second ``SystemExit`` cut the write of the first, and the row stayed
    ``running``.  A signal after ``seconds`` goes through: a database that hangs does
    not make the command unstoppable.  Held signals are dropped when the block ends
    stopping (they asked for that), and delivered when it ends otherwise.
    """
    if threading.current_thread() is not threading.main_thread():  # handlers live there
        yield
        return
    previous: dict[int, Any] = {
        s: handler for s in STOP_SIGNALS if (handler := signal.getsignal(s)) is not None
    }
    first: list[float] = []
    held: list[int] = []

    def restore() -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        if first and time.monotonic() - first[0] < seconds:
            held.append(signum)
            return
        handler = previous[signum]
        if handler == signal.SIG_IGN:
            return
        first[:] = first or [time.monotonic()]
        if callable(handler):
            handler(signum, frame)
        else:  # the default action: end the process
            restore()
            signal.raise_signal(signum)

    for signum in previous:
        signal.signal(signum, on_stop)
    try:
        yield
    finally:
        restore()
    for stop in dict.fromkeys(held):
        signal.raise_signal(stop)


@contextlib.contextmanager
def _said_if_stopped(integration_id: uuid.UUID, run_id: uuid.UUID | None) -> Iterator[None]:
    """Ctrl-C or SIGTERM mid-sync: one line on what the row recorded (it exited silently, 143)."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit):
        say_error(f"toolbox lms sync: stopped; {_stop_recorded(integration_id, run_id)}")
        raise


def _stop_recorded(integration_id: uuid.UUID, run_id: uuid.UUID | None) -> str:
    """What the row says once the run stopped, read back: the line said ``recorded failed``
    when a second signal, a locked row or the database had kept it ``running``."""
    sync, kept = f"the sync of {integration_id}", "what it wrote stays"
    try:
        with get_engine().connect() as connection:
            end = recorded_end(connection, integration_id, run_id, within=STOP_WRITE_SECONDS)
    except SQLAlchemyError as exc:
        problem = type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__
        return (f"whether {sync} is recorded failed is unknown, its row could not be read "
                f"({problem}): `toolbox lms status {integration_id}` says")  # fmt: skip
    if end.claimed:
        return (f"{sync} could not be recorded failed: it shows running until the next "
                f"`toolbox lms sync` takes it over (beat does after 15 minutes); "
                f"{kept}")  # fmt: skip
    if end.status in ("running", None):
        return f"another run holds {sync} now; {kept}"
    how = " (interrupted)" if (end.message or "").startswith("interrupted") else ""
    return (f"{sync} is recorded {end.status}{how}; {kept}, and the next sync writes only "
            "what is left")  # fmt: skip


def _report_json(report: SyncReport) -> dict[str, Any]:
    """The report for ``--json``; a failed run's ``errors`` hold its reason.

    A run that failed as a whole (the LMS unreachable, credentials refused)
    has no per-course errors, only a ``message``: it goes in ``errors`` too,
    so a script reads why any failed sync failed from one field.
    """
    shown = report.as_dict()
    if report.reason:
        shown["errors"] = [report.reason]
    return shown


def _show_report(report: SyncReport) -> None:
    colour = {"success": "green", "partial": "yellow"}.get(report.status, "red")
    console.print(f"[{colour}]{report.status}[/{colour}] in {report.seconds:.1f}s")
    if report.not_before:
        console.print(f"the LMS asked not to be called before {_when(report.not_before)}: "
                      "beat waits until then")  # fmt: skip
    if report.status == "skipped" or report.courses_listed == 0:
        console.print(escape(redact(report.message or "the LMS lists no courses")))
        return
    table = Table("", "new", "updated", "unchanged", "removed")
    for name, counts in (("courses", report.courses), ("assignments", report.assignments),
                         ("enrollments", report.enrollments)):  # fmt: skip
        removed = report.courses_removed if name == "courses" else counts.removed
        table.add_row(name, str(counts.inserted), str(counts.updated), str(counts.unchanged),
                      str(removed))  # fmt: skip
    console.print(table)
    if report.courses_restricted:
        console.print(f"{report.courses_restricted} course(s) restricted: listed, but closed "
                      "to the token for now; kept as last read, with their rosters and "
                      "assignments")  # fmt: skip
    if report.message:
        console.print(escape(_unsaid(report)))


def _unsaid(report: SyncReport) -> str:
    """The report's message but what a warning line already said as it happened: the
    reason of each failed course (and of the courses left unread) is said once."""
    if not report.errors:
        return redact(report.message or "")
    return (f"{report.courses_failed} of {report.courses_listed} course(s) failed "
            "(the warnings above say why)")  # fmt: skip


def _when(moment: dt.datetime | None, *, short: bool = False) -> str:
    if moment is None:
        return "-"
    return moment.astimezone(dt.UTC).strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M UTC")
