"""Failures into ``error_logs``: one row per distinct error, counted.

The hash is sha256 of the error type, the message with ids and numbers
stripped, and the service, so "task 3f2a... failed after 12 s" and "task
9c1b... failed after 40 s" are one row whose ``occurrence_count`` grows.
A repeat keeps ``first_seen``, moves ``last_seen``, keeps the highest
severity seen, and reopens a ``resolved`` row (a regression).  Only ids and
error text are stored: never a task's input or output.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from agents.engine import TaskFailure
from models.errors import ConfigurationError, RedeliveryExceeded, RetryableError, ToolboxError
from models.redaction import redact
from workers.settings import get_settings

SEVERITIES = ("low", "medium", "high", "critical")
CRITICAL_TYPES = frozenset({RedeliveryExceeded.__name__, ConfigurationError.__name__})
"""A crash loop or a broken configuration (a chat model that cannot be built): every task
of the kind fails alike until someone acts."""
MAX_MESSAGE = 2000
MAX_TRACE = 4000

_NORMALISERS = (
    (re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}", re.I), "<id>"),
    (re.compile(r"\b0x[0-9a-f]+\b", re.I), "<hex>"),
    (re.compile(r"\b(?=[0-9a-f]*\d)[0-9a-f]{12,}\b", re.I), "<hex>"),
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)


def normalise_message(message: str) -> str:
    """The message with ids, hex digests and numbers replaced, whitespace collapsed."""
    for pattern, replacement in _NORMALISERS:
        message = pattern.sub(replacement, message)
    return message.strip()[:MAX_MESSAGE]


def error_hash(error_type: str, message: str, service: str) -> str:
    key = "\x1f".join((error_type, normalise_message(message), service))
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class ErrorEvent:
    """One occurrence of an error, ready to be counted."""

    error_type: str
    message: str
    service: str
    severity: str
    error_code: str | None = None
    stack_trace: str | None = None
    agent_id: uuid.UUID | None = None
    task_id: uuid.UUID | None = None
    context: dict[str, Any] = field(default_factory=dict)
    """Ids and statuses only (stored in ``request_data``)."""
    occurrences: int = 1


_UPSERT = text(
    "INSERT INTO error_logs (error_type, error_code, error_message, error_hash, agent_id,"
    " task_id, request_data, stack_trace, environment, service_name, service_version, severity,"
    " occurrence_count)"
    " VALUES (:error_type, :error_code, :message, :hash, :agent_id,"
    " (SELECT id FROM agent_tasks WHERE id = :task_id), :context, :stack_trace, :environment,"
    " :service, :version, :severity, :occurrences)"
    " ON CONFLICT (error_hash) DO UPDATE SET"
    " occurrence_count = error_logs.occurrence_count + excluded.occurrence_count,"
    " last_seen = now(),"
    " error_message = excluded.error_message, error_code = excluded.error_code,"
    " agent_id = coalesce(excluded.agent_id, error_logs.agent_id),"
    " task_id = coalesce(excluded.task_id, error_logs.task_id),"
    " request_data = excluded.request_data, stack_trace = excluded.stack_trace,"
    " service_version = excluded.service_version,"
    " severity = CASE WHEN array_position(:ranks, excluded.severity)"
    " > array_position(:ranks, error_logs.severity) THEN excluded.severity"
    " ELSE error_logs.severity END,"
    " status = CASE WHEN error_logs.status = 'resolved' THEN 'new' ELSE error_logs.status END,"
    " resolved_at = CASE WHEN error_logs.status = 'resolved' THEN NULL"
    " ELSE error_logs.resolved_at END"
).bindparams(bindparam("context", type_=JSONB))


def record_error(connection: Connection, event: ErrorEvent) -> None:
    """Insert the error or count one more occurrence of it (never commits)."""
    if event.severity not in SEVERITIES:
        raise ValueError(f"unknown severity {event.severity!r}")
    connection.execute(
        _UPSERT,
        {
            "error_type": event.error_type[:50],
            "error_code": None if event.error_code is None else event.error_code[:50],
            "message": event.message[:MAX_MESSAGE] or event.error_type[:50],
            "hash": error_hash(event.error_type, event.message, event.service),
            "agent_id": event.agent_id,
            "task_id": event.task_id,
            "context": event.context,
            "stack_trace": None if event.stack_trace is None else event.stack_trace[-MAX_TRACE:],
            "environment": _environment(),
            "service": event.service[:50],
            "version": service_version(),
            "severity": event.severity,
            "occurrences": event.occurrences,
            "ranks": list(SEVERITIES),
        },
    )


def failure_severity(failure: TaskFailure) -> str:
    """Retries are expected ('low'); a failed task is 'high'; a crash loop or a broken
    configuration 'critical', as ``exception_severity`` rates them."""
    if failure.details.get("type") in CRITICAL_TYPES:
        return "critical"
    return "low" if failure.status == "retrying" else "high"


def exception_severity(exc: BaseException) -> str:
    """For tasks that raised: broken configuration or crash loops stop everything."""
    if isinstance(exc, ConfigurationError | RedeliveryExceeded):
        return "critical"
    if isinstance(exc, RetryableError):
        return "medium"
    return "high"


def agent_service(agent_type: str) -> str:
    return f"toolbox.agent.{agent_type}"


def record_task_failure(engine: Engine, failure: TaskFailure) -> None:
    """The agent engine's reporter: one failed or retrying attempt of an agent task."""
    details = failure.details
    event = ErrorEvent(
        error_type=str(details.get("type") or "Error"),
        message=str(details.get("message") or ""),
        service=agent_service(failure.agent_type),
        severity=failure_severity(failure),
        error_code="retryable" if details.get("retryable") else "permanent",
        stack_trace=details.get("traceback"),
        agent_id=failure.agent_id,
        task_id=failure.task_id,
        context={
            "workflow_id": str(failure.workflow_id),
            "status": failure.status,
            "agent_type": failure.agent_type,
        },
    )
    with engine.begin() as connection:
        record_error(connection, event)


def record_exception(
    engine: Engine,
    exc: BaseException,
    *,
    service: str,
    celery_task_id: str | None = None,
    stack_trace: str | None = None,
) -> None:
    """A Celery task raised (LMS, maintenance, or an agent task failing outside the engine)."""
    task_id = _uuid_or_none(celery_task_id)
    event = ErrorEvent(
        error_type=type(exc).__name__,
        message=redact(exc.message if isinstance(exc, ToolboxError) else str(exc)),
        service=service,
        severity=exception_severity(exc),
        error_code="retryable" if isinstance(exc, RetryableError) else "permanent",
        stack_trace=None if stack_trace is None else redact(stack_trace),
        task_id=task_id,
        context={"celery_task_id": celery_task_id, "task": service},
    )
    with engine.begin() as connection:
        record_error(connection, event)


def _uuid_or_none(value: str | None) -> uuid.UUID | None:
    try:
        return None if value is None else uuid.UUID(value)
    except ValueError:
        return None


def _environment() -> str:
    return get_settings().env


def service_version() -> str | None:
    try:
        return importlib.metadata.version("toolboxai-worker")[:20]
    except importlib.metadata.PackageNotFoundError:
        return None
