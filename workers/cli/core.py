"""``toolbox up | migrate | db check | config``."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from models.errors import ConfigurationError, ValidationFailed
from workers import uplock
from workers.app import check_models
from workers.cli.consoles import console as make_console
from workers.cli.failures import check_broker, check_servers, say_error
from workers.cli.lookup import warn
from workers.cli.options import seconds
from workers.cli.usage import refused
from workers.embedded import resolve_servers
from workers.embedded_watch import EmbeddedWatch, Refused
from workers.flower import check_login, check_port, flower_launch
from workers.procs import (
    COLD_SIGNALS,
    PROCESSES,
    STOP_GRACE_SECONDS,
    choose,
    how_it_ended,
    process_env,
    run_in_foreground,
)
from workers.settings import (
    ENV_PREFIX,
    NESTED,
    data_dir_problem,
    ensure_data_dir,
    get_settings,
)
from workers.stack import Stack

console = make_console()
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)


def up(
    processes: Annotated[
        str, typer.Option(help="Comma-separated processes to run: " + ", ".join(PROCESSES))
    ] = ",".join(PROCESSES),
    stop_timeout: Annotated[
        float,
        typer.Option(
            metavar="SECONDS",
            parser=seconds,
            help="How long a stop waits for running tasks before it stops them now (they run "
            "again later); the default outlasts the longest task time limit",
        ),
    ] = STOP_GRACE_SECONDS,
) -> None:
    """Start the worker stack in the foreground (embedded servers when no URLs are set).

    Checks the process list, Flower's login and port when Flower is in
    it, and that PostgreSQL and Redis answer (if not: one line, exit
    status 2, nothing started), migrates the schema, then starts the
    processes.  Ctrl-C or SIGTERM stops them, letting running tasks
    finish for up to --stop-timeout seconds; a second one stops them now.
    An embedded server that dies meanwhile is started again within seconds.
    """
    try:
        names = choose(processes)
    except ConfigurationError as exc:
        raise refused("--processes", exc.message) from None
    ensure_data_dir(get_settings().data_dir)  # beat keeps its schedule there, even with URLs set
    lock = uplock.hold(get_settings().data_dir)  # before the port check: it names the holder
    if "flower" in names:
        check_login(get_settings())
        check_port(get_settings())  # else Flower dies with a traceback once the rest runs
    if "agents" in names:
        check_models(get_settings())  # else each task fails at its first model call
    servers = resolve_servers()
    check_servers(
        servers.database_url,
        servers.broker_url,
        embedded_database="postgresql" in servers.embedded,
    )
    settings = get_settings()
    where = ", ".join(servers.embedded) or "none"
    console.print(f"[bold]toolbox[/bold] embedded servers: {where}")
    from workers import migrate as schema  # Alembic: only for the commands that use it

    schema.upgrade(servers.database_url)
    console.print(f"schema at {schema.current_revision(servers.database_url)}")
    env = process_env()
    env.setdefault("TOOLBOX_DATA_DIR", str(settings.data_dir))
    watch = EmbeddedWatch(servers)
    stack = Stack(
        {name: PROCESSES[name] for name in names},
        env,
        grace=stop_timeout,
        cold_signals=COLD_SIGNALS,
        on_end=_ended,
        on_stop=watch.halt,  # no server starts again during the stop
    )

    def not_restarted(refused: Refused) -> None:
        """An embedded server cannot be started again: the stack stops as if a process ended."""
        say_error(f"toolbox up: {refused}; stopping the stack")
        stack.end(f"embedded {refused.server} stopped; not started again")

    with lock, watch.watching(not_restarted):  # held until the stack has stopped
        code = stack.run()
    sys.exit(code)


def _ended(name: str, returncode: int) -> None:
    """A process of ``toolbox up`` ended by itself: the stack stops, and says why on stderr."""
    say_error(f"toolbox up: the {name} process {how_it_ended(returncode)}; stopping the stack")


def migrate(
    revision: Annotated[
        str,
        typer.Argument(
            metavar="REVISION", help="Revision to upgrade to (0001, 0002, ...); never downgrades"
        ),
    ] = "head",
) -> None:
    """Upgrade the database schema and seed the default agents (idempotent).

    An unknown revision is one line naming the ones there are (exit status 2).
    """
    servers = resolve_servers(redis=False)  # PostgreSQL alone: no embedded Redis started
    from workers import migrate as schema  # Alembic: only for the commands that use it

    try:
        schema.upgrade(servers.database_url, revision)
    except ValidationFailed as exc:  # a revision Alembic cannot go to
        raise refused("REVISION", exc.message) from None
    console.print(f"schema at {schema.current_revision(servers.database_url)}")


def db_check() -> None:
    """Report whether the database schema matches the models (exit 1 if not)."""
    servers = resolve_servers(redis=False)
    from workers import migrate as schema  # Alembic: only for the commands that use it

    current = schema.current_revision(servers.database_url)
    head = schema.head_revision()
    problems: list[str] = []
    if current != head:
        problems.append(f"database at revision {current}, code at {head}: run `toolbox migrate`")
    else:
        problems.extend(schema.schema_drift(servers.database_url))
    if problems:
        for line in problems:
            console.print(f"[red]drift[/red] {escape(line)}")
        raise typer.Exit(1)
    console.print(f"schema matches the models (revision {head})")


def config(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Print the effective settings, secrets masked; warn of a data folder that is unusable."""
    settings = get_settings()
    shown = settings.masked()
    if as_json:
        typer.echo(json.dumps(shown, indent=2, default=str))
    else:
        table = Table("setting", "value")
        for name, value in _variables(shown):
            table.add_row(name, "(embedded)" if value is None else escape(str(value)))
        console.print(table)
    problem = data_dir_problem(settings.data_dir)  # the commands that need it would refuse
    if problem is not None:
        warn(problem)


def _variables(shown: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """Each setting by the variable that sets it: a nested one field by field
    (``TOOLBOX_RETENTION_USAGE_DAYS``), not as one ``TOOLBOX_RETENTION`` dict."""
    for name, value in shown.items():
        if name in NESTED and isinstance(value, dict):
            for field, item in value.items():
                yield f"{ENV_PREFIX}{name.upper()}_{field.upper()}", item
        else:
            yield f"{ENV_PREFIX}{name.upper()}", value


def flower() -> None:
    """Run Flower with basic auth from TOOLBOX_FLOWER_BASIC_AUTH and persistent state.

    Refuses to start (one line, exit status 2) when Redis does not answer:
    Flower would otherwise retry forever and show an empty dashboard.
    """
    servers = resolve_servers()  # first: Flower's environment must carry the URLs it exports
    launch = flower_launch(get_settings())
    check_broker(servers.broker_url)
    check_port(get_settings())  # else Flower dies with a traceback
    # a child, not exec: this process must live on to leave the embedded servers
    sys.exit(run_in_foreground(launch.argv, launch.env, name="Flower"))


def register(app: typer.Typer) -> None:
    app.command()(up)
    app.command()(flower)
    app.command()(migrate)
    app.command()(config)
    db_app.command("check")(db_check)
    app.add_typer(db_app, name="db")
