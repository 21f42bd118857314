"""Log records in a command's terminal: one ``warning: ...`` or ``error: ...`` line each.

The worker and beat processes log JSON lines with timestamps
(``workers.logs``, set up by Celery's ``setup_logging`` signal, which no
command sends).  A command shows a record the way it shows its own
warnings: one yellow ``warning: <message>`` line on stderr (stdout carries
the result, ``--json``), secrets masked.  A record at ERROR or above, which
the command has survived (one grade passback among several failing), is a
red ``error: ...`` line; the command's own refusals never pass through
logging, so no line is said twice.  INFO and DEBUG records (httpx logs
every request at INFO) are not shown.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from models.redaction import redact
from workers.cli.failures import say_error
from workers.cli.lookup import warn
from workers.db import SCHEMA_WARNING

PROJECT_LOGGERS = frozenset({"agents", "lms", "models", "tasks", "workers"})
"""The top-level packages whose records speak to the user as they are; another
library's record is prefixed with its logger's name (``kombu: ...``)."""


_held: list[str] = []


class CommandLogHandler(logging.Handler):
    """A record as one ``warning:`` or ``error:`` line on stderr, like the CLI's own.

    The schema warning (``workers.db``) waits for the command's end (``say_held``):
    a command that then fails on that schema says so in its error line alone.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = command_line(record)
        except Exception:
            self.handleError(record)
            return
        if getattr(record, SCHEMA_WARNING, False):
            _held.append(line)
            return
        if record.levelno >= logging.ERROR:
            say_error(line)
        else:
            warn(line)


def say_held(*, said_already: bool) -> None:
    """The held warnings, unless the command's error line ``said_already`` the same."""
    lines, _held[:] = list(_held), []
    if not said_already:
        for line in lines:
            warn(line)


def command_line(record: logging.LogRecord) -> str:
    """``record``'s message in one line, secrets masked; an exception's type and text,
    not its traceback."""
    text = record.getMessage()
    if record.name.partition(".")[0] not in PROJECT_LOGGERS:
        text = f"{record.name}: {text}"
    if record.exc_info and record.exc_info[1] is not None:
        exc = record.exc_info[1]
        text += f" ({type(exc).__name__}: {exc})" if str(exc) else f" ({type(exc).__name__})"
    return redact(" ".join(part.strip() for part in text.splitlines() if part.strip()))


def configure_command_logging() -> None:
    """WARNING and above, as lines of the command (``CommandLogHandler``), replacing any handler."""
    handler = CommandLogHandler(logging.WARNING)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    # a refused message: the submit commands print a warning a user can act on instead
    logging.getLogger("workers.dispatch").setLevel(logging.ERROR)


@contextlib.contextmanager
def unshown(logger: logging.Logger) -> Iterator[None]:
    """Records of ``logger`` itself are not shown inside: the command prints the same itself."""

    def drop(record: logging.LogRecord) -> bool:
        del record
        return False

    logger.addFilter(drop)
    try:
        yield
    finally:
        logger.removeFilter(drop)
