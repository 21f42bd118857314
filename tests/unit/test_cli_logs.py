"""Log records in a command's terminal: ``warning:`` and ``error:`` lines on stderr only."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from workers.cli.logs import configure_command_logging


@pytest.fixture
def command_logging() -> Iterator[None]:
    """What ``toolbox`` sets up, undone afterwards (pytest's own handlers come back)."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    dispatch = logging.getLogger("workers.dispatch")
    configure_command_logging()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    dispatch.setLevel(logging.NOTSET)


def test_warnings_and_errors_are_one_line_each_on_stderr(
    command_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logging.getLogger("lms.http").warning("GET %s: HTTP 503; retry 1", "https://a:S3cret@lms/x")
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logging.getLogger("lms.drain").exception("grade passback %s: unexpected error", 7)
    logging.getLogger("kombu.connection").warning("no route")
    logging.getLogger("httpx").info("HTTP Request: GET https://lms/x")  # INFO: never shown
    logging.getLogger("workers.dispatch").warning("refused")  # the submit commands say it
    shown = capsys.readouterr()
    assert shown.out == ""
    assert shown.err.splitlines() == [
        "warning: GET https://a:***@lms/x: HTTP 503; retry 1",
        "error: grade passback 7: unexpected error (RuntimeError: boom second line)",
        "warning: kombu.connection: no route",
    ]
