"""The JSON log lines: one object per record, a traceback shown once."""

from __future__ import annotations

import json
import logging
import sys

from workers.logs import JsonFormatter


def _failure_record() -> logging.LogRecord:
    """A record as ``celery.app.trace`` logs a task's failure: the traceback both as the
    record's ``exc_info`` and as ``data["traceback"]``."""
    try:
        raise ValueError("bad input")
    except ValueError:
        exc_info = sys.exc_info()
    context = {
        "id": "5f0c",
        "name": "agent_tasks.run",
        "exc": "ValueError('bad input')",
        "traceback": "Traceback (most recent call last):\n  ...\nValueError: bad input\n",
    }
    return logging.getLogger("celery.app.trace").makeRecord(
        "celery.app.trace",
        logging.ERROR,
        __file__,
        1,
        "Task %(name)s[%(id)s] raised unexpected: %(exc)s",
        (context,),
        exc_info,
        extra={"data": context},
    )


def test_a_celery_task_failure_carries_its_traceback_once() -> None:
    record = _failure_record()
    context = record.data  # type: ignore[attr-defined]
    line = json.loads(JsonFormatter().format(record))
    assert line["msg"] == "Task agent_tasks.run[5f0c] raised unexpected: ValueError('bad input')"
    assert line["exc"].startswith("Traceback") and "ValueError: bad input" in line["exc"]
    assert line["data"] == {"id": "5f0c", "name": "agent_tasks.run", "exc": context["exc"]}


def test_a_record_without_exc_info_keeps_its_data_whole() -> None:
    record = _failure_record()
    record.exc_info = None
    line = json.loads(JsonFormatter().format(record))
    assert "exc" not in line and line["data"]["traceback"].startswith("Traceback")
