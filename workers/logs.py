"""Structured JSON logs with task and workflow ids; no payloads, no secrets.

Every line passes ``models.redaction.redact`` last, whoever logged it: httpx logs
each request's full URL at INFO, and an LMS address stored by an older
version may hold a password (``https://user:***@host`` is what shows).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from models.redaction import redact

task_context: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar(
    "task_context", default=None
)
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update(task_context.get() or {})
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
            data = entry.get("data")
            if isinstance(data, dict) and "traceback" in data:
                # Celery's task failure line carries its traceback in both: keep it once.
                entry["data"] = {k: v for k, v in data.items() if k != "traceback"}
        return redact(json.dumps(entry, default=str))


class TextFormatter(logging.Formatter):
    """Plain lines, URL secrets masked as in the JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class ContextFilter(logging.Filter):
    """Adds the current task's ids to plain-text records too."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (task_context.get() or {}).items():
            setattr(record, key, value)
        return True


def configure_logging(level: str = "INFO", *, json_output: bool = True) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_output:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
