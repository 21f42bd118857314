"""The ``toolbox`` command line; every command prints one clear line on error."""

from __future__ import annotations

import os
import signal
import sys

import typer

from models.errors import ToolboxError
from workers.cli import core, metavars, ops
from workers.cli.failures import explain, fail
from workers.cli.lms import lms_app
from workers.cli.logs import configure_command_logging, say_held
from workers.cli.lookup import TERMINATED
from workers.cli.tasks import task_app
from workers.cli.usage import OneLineUsage
from workers.cli.workflow import workflow_app
from workers.settings import get_settings, require_stack_secrets

metavars.install()  # --wait, not --wait <bool>; agent TEXT, not agent <str>
app = typer.Typer(
    name="toolbox",
    help="ToolboxAI worker: agent tasks, workflows and LMS sync on Celery + PostgreSQL.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    cls=OneLineUsage,  # a usage error of any command is one line too
)


@app.callback()
def _stack_secrets() -> None:
    """Every command is the operator's: production's secrets are checked before it runs."""
    require_stack_secrets(get_settings())


core.register(app)
ops.register(app)
app.add_typer(task_app, name="task")
app.add_typer(lms_app, name="lms")
app.add_typer(workflow_app, name="workflow")


def main() -> None:
    configure_command_logging()
    embedded_database = not os.environ.get("TOOLBOX_DATABASE_URL")  # before resolve_servers
    # SIGTERM ends a command the way Ctrl-C does, through exit cleanup (leaving embedded servers)
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(TERMINATED))
    try:
        app()
    except ToolboxError as exc:
        say_held(said_already=False)
        fail(exc.message)
    except Exception as exc:  # PostgreSQL or Redis unreachable, no schema: one line too
        message = explain(exc, embedded_database=embedded_database)
        say_held(said_already=message is not None and "schema" in message)
        if message is None:
            raise
        fail(message)
    finally:
        say_held(said_already=False)  # a command that ended well (or exited itself)
