"""LMS failures into ``error_logs``: failed or partial syncs, and grades not sent.

The LMS layer keeps its own status columns (``lms_integrations.sync_error_message``,
``lms_grade_passbacks.error_message``); these rows put the same failures next
to every other error, where ``toolbox status``, the metrics and the health
job's error rate look.  Grades failing alike are counted in one upsert per
distinct error.  Recording is best effort: the outcome is already written,
and a database hiccup here must not fail the sync or the drain.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from lms.drain import PassbackProblem
from lms.sync import SyncReport
from models.errors import RetryableError
from workers.jobs.errors import ErrorEvent, error_hash, record_error

log = logging.getLogger(__name__)

SYNC_SERVICE = "toolbox.lms.sync"
PASSBACK_SERVICE = "toolbox.lms.passback"
_SYNC_SEVERITY = {"failed": "high", "partial": "medium"}
_PASSBACK_SEVERITY = {"failed": "high", "pending": "low"}


def record_sync(engine: Engine, report: SyncReport) -> None:
    """A sync that ended ``failed`` or ``partial`` (success and skipped are not errors)."""
    severity = _SYNC_SEVERITY.get(report.status)
    if severity is None:
        return
    event = ErrorEvent(
        error_type="LMSSyncFailed" if report.status == "failed" else "LMSSyncPartial",
        message=report.message or f"sync {report.status}",
        service=SYNC_SERVICE,
        severity=severity,
        error_code=report.status,
        context={"integration_id": str(report.integration_id), "status": report.status},
    )
    _record(engine, [event])


def record_sync_retry(engine: Engine, integration_id: uuid.UUID, exc: RetryableError) -> None:
    """A whole sync failed transiently and will be retried."""
    event = ErrorEvent(
        error_type=type(exc).__name__,
        message=exc.message,
        service=SYNC_SERVICE,
        severity="low",
        error_code="retryable",
        context={"integration_id": str(integration_id), "status": "retrying"},
    )
    _record(engine, [event])


def record_passbacks(engine: Engine, problems: Iterable[PassbackProblem]) -> None:
    """Each grade not sent: ``failed`` for good (high) or back to ``pending`` (low)."""
    groups: dict[tuple[str, str, str], list[PassbackProblem]] = {}
    for problem in problems:
        groups.setdefault((problem.status, problem.error_type, problem.error), []).append(problem)
    events = []
    for (status, error_type, error), group in groups.items():
        last = group[-1]
        events.append(
            ErrorEvent(
                error_type=error_type,
                message=error,
                service=PASSBACK_SERVICE,
                severity=_PASSBACK_SEVERITY.get(status, "medium"),
                error_code="permanent" if status == "failed" else "retryable",
                context={
                    "integration_id": str(last.integration_id),
                    "passback_id": str(last.passback_id),
                    "status": status,
                },
                occurrences=len(group),
            )
        )
    _record(engine, events)


def _record(engine: Engine, events: list[ErrorEvent]) -> None:
    if not events:
        return
    # one order for every writer, so two drains upserting the same errors cannot deadlock
    events.sort(key=lambda event: error_hash(event.error_type, event.message, event.service))
    try:
        with engine.begin() as connection:
            for event in events:
                record_error(connection, event)
    except SQLAlchemyError as exc:
        log.warning("could not record %d LMS error(s): %s", len(events), type(exc).__name__)
