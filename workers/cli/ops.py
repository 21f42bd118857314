"""``toolbox status | metrics``: what an operator looks at, from PostgreSQL and Redis."""

from __future__ import annotations

import datetime as dt
import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from workers.cli.consoles import console as make_console
from workers.cli.failures import redis_unreachable
from workers.cli.usage import refused
from workers.db import get_engine
from workers.embedded import resolve_servers
from workers.jobs.status import Status, collect_status
from workers.logs import configure_logging
from workers.metrics import DEFAULT_PORT, CannotListen, listen, run
from workers.redis import get_redis
from workers.settings import get_settings

console = make_console()
HEALTH_COLOURS = {"healthy": "green", "degraded": "yellow", "unhealthy": "red"}


def _when(value: dt.datetime | None, now: dt.datetime) -> str:
    if value is None:
        return "never"
    seconds = int((now - value).total_seconds())
    if seconds < 120:
        return f"{seconds}s ago"
    if seconds < 7200:
        return f"{seconds // 60}m ago"
    return f"{seconds // 3600}h ago" if seconds < 172800 else value.strftime("%Y-%m-%d %H:%M")


def _table(*columns: str, title: str, free: tuple[str, ...]) -> Table:
    """A table whose ``free`` text columns wrap and whose others never do.

    Squeezed into 80 columns, rich shrinks every column alike: agent names,
    counts and times came out as ``supervis…`` and ``complet…``.  Now only the
    free text (messages, details) gives way, a word per line if it must.
    """
    table = Table(title=title)
    for column in columns:
        table.add_column(column, no_wrap=column not in free, overflow="fold")
    return table


def _queues(report: Status) -> Table:
    table = _table(
        "queue", "waiting", "by priority (9 = highest)", title="Queues (Redis)",
        free=("by priority (9 = highest)",),
    )  # fmt: skip
    for queue in report.queues:
        counts = sorted(queue["by_priority"].items(), reverse=True)
        spread = ", ".join(f"p{priority}: {count}" for priority, count in counts)
        table.add_row(queue["name"], str(queue["depth"]), spread or "-")
    if report.broker_error:
        table.add_row("[red]unavailable[/red]", "-", escape(report.broker_error))
        table.caption = redis_unreachable()
    else:
        table.caption = f"{report.unacked} message(s) delivered and not yet acknowledged"
    return table


def _agents(report: Status) -> Table:
    table = _table(
        "agent", "running/slots", "waiting", "retry", "done 1h", "failed 1h", "checked",
        title="Agent tasks (PostgreSQL)", free=("agent",),  # "(inactive)" may wrap
    )  # fmt: skip
    for row in report.agents:
        failed = f"[red]{row['failed_last_hour']}[/red]" if row["failed_last_hour"] else "0"
        name = row["agent"] if row["active"] else f"{row['agent']} (inactive)"
        table.add_row(
            escape(name), f"{row['running']}/{row['slots']}", str(row["waiting"]),
            str(row["retrying"]), str(row["completed_last_hour"]), failed,
            _when(row["last_health_check"], report.generated_at),
        )  # fmt: skip
    return table


def _errors(report: Status) -> Table:
    table = _table(
        "severity", "type", "service", "count", "last seen", "message",
        title="Errors seen in the last hour (error_logs)", free=("type", "service", "message"),
    )  # fmt: skip
    for row in report.errors_last_hour:
        table.add_row(
            row["severity"], escape(row["error_type"]), escape(row["service"] or "-"),
            str(row["occurrence_count"]), _when(row["last_seen"], report.generated_at),
            escape(row["message"]),
        )  # fmt: skip
    if not report.errors_last_hour:
        table.add_row("-", "none", "", "", "", "")
    return table


def _lms(report: Status) -> Table:
    table = _table("institution", "platform", "active", "last sync", "status", "error",
                   title="LMS integrations", free=("institution", "status", "error"))  # fmt: skip
    for row in report.lms:
        state = row["last_sync_status"] or "-"
        if row["not_before"]:  # the LMS's Retry-After: no sync nor grade before then
            until = row["not_before"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
            state += f"\nnot before {until} (Retry-After)"
        table.add_row(
            escape(row["institution"]), row["platform"], "yes" if row["active"] else "no",
            _when(row["last_sync_at"], report.generated_at), state, escape(row["error"] or ""),
        )  # fmt: skip
    passbacks = report.passbacks
    caption = (
        f"grade passbacks: {passbacks['pending']} pending, {passbacks['sending']} sending, "
        f"{passbacks['failed']} failed"
    )
    if passbacks["oldest_pending"] is not None:
        caption += f"; oldest pending {_when(passbacks['oldest_pending'], report.generated_at)}"
    table.caption = caption
    return table


def _health_and_jobs(report: Status) -> Table:
    table = _table(
        "periodic job",
        "last slot",
        "status",
        "detail",
        title="Health and periodic jobs",
        free=("detail",),
    )
    health = report.health
    if health is None:
        table.add_row("health check", "never", "-", "")
    else:
        colour = HEALTH_COLOURS.get(health["status"], "white")
        reasons = "; ".join(health["errors"] + health["warnings"]) or "all checks passed"
        table.add_row(
            "health check", _when(health["checked_at"], report.generated_at),
            f"[{colour}]{health['status']}[/{colour}] ({health['score']:.0f})", escape(reasons),
        )  # fmt: skip
    for job in report.jobs:
        detail = json.dumps(job["detail"], sort_keys=True) if job["detail"] else ""
        table.add_row(
            job["job"], _when(job["slot_start"], report.generated_at), job["status"], escape(detail)
        )
    return table


def render(report: Status) -> None:
    for table in (_queues, _agents, _errors, _lms, _health_and_jobs):
        console.print(table(report))


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Queues (from Redis), running tasks, failures, LMS syncs, passbacks and health (PostgreSQL).

    Redis unreachable: the queue table says so and the rest is still shown.
    A Redis that refuses TOOLBOX_REDIS_URL's settings (database number,
    password) is one error line naming the setting, exit status 2.
    """
    resolve_servers()
    with get_engine().connect() as connection:
        report = collect_status(connection, get_redis())
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2, default=_json_default))
        return
    render(report)


def _json_default(value: Any) -> str:
    return value.isoformat() if isinstance(value, dt.datetime) else str(value)


def metrics(
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on")] = DEFAULT_PORT,
    address: Annotated[
        str | None, typer.Option(help="Address to bind (default 127.0.0.1 in development)")
    ] = None,
) -> None:
    """Serve Prometheus metrics Flower lacks: queue depths, retries, durations, health.

    A service, not a one-off command: it logs as the workers do
    (TOOLBOX_LOG_LEVEL, TOOLBOX_LOG_JSON), timestamped.
    """
    settings = get_settings()
    configure_logging(settings.log_level, json_output=settings.log_json)
    bind = address or ("127.0.0.1" if settings.env == "development" else "0.0.0.0")
    try:  # first: a port in use is one line, before embedded servers start and log
        server = listen(get_engine, get_redis, port=port, address=bind)
    except CannotListen as exc:  # say so before claiming to serve, in one line
        raise refused(exc.flag, exc.message) from None
    resolve_servers()  # the collector reaches the servers only when scraped
    console.print(f"metrics on http://{bind}:{port}/metrics")
    run(server)


def register(app: typer.Typer) -> None:
    app.command()(status)
    app.command()(metrics)
