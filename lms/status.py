"""What an operator asks about integrations: last sync, next sync, data held, grades owed.

Read-only queries returning plain dataclasses, for ``toolbox lms list|status``
and for services; never a secret (the encrypted columns are not selected, and
a password that an older version let into ``base_url`` shows as ``***``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Connection, text

from lms.schedule import NEXT_DUE, SyncPolicy, due_params, limit_statements
from models.errors import NotFound
from models.ids import resolve_id as resolve_prefix
from models.redaction import redact

PASSBACK_STATUSES = ("pending", "sending", "success", "failed")
RESTRICTED_SHOWN = 10
"""Restricted courses named by ``integration_detail``; the count says how many more."""


@dataclass(frozen=True)
class IntegrationSummary:
    id: uuid.UUID
    platform: str
    institution: str
    base_url: str
    is_active: bool
    sync_frequency_hours: int
    last_sync_at: dt.datetime | None
    last_sync_status: str | None
    sync_error_message: str | None
    next_sync_at: dt.datetime | None
    not_before: dt.datetime | None
    """While in the future: the LMS asked (``Retry-After``) not to be called before then."""
    sync_run_id: uuid.UUID | None
    """While a sync runs (``running``): its claim's run id, which its message and retries carry."""
    passbacks: dict[str, int] = field(default_factory=dict)
    passbacks_held: int = 0
    """Of the ``pending`` grades, those held because their course is closed in the LMS
    (restricted): not sent until a sync finds it open, failed after ``give_up_after``."""

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["id"] = str(self.id)
        shown["sync_run_id"] = str(self.sync_run_id) if self.sync_run_id else None
        for key in ("last_sync_at", "next_sync_at", "not_before"):
            shown[key] = shown[key].isoformat() if shown[key] else None
        return shown


@dataclass(frozen=True)
class RestrictedCourse:
    """A listed course the LMS keeps closed to the token (Canvas: restricted by date)."""

    external_id: str
    title: str
    since: dt.datetime

    def as_dict(self) -> dict[str, Any]:
        return {"external_id": self.external_id, "title": self.title,
                "since": self.since.isoformat()}  # fmt: skip


@dataclass(frozen=True)
class IntegrationDetail:
    summary: IntegrationSummary
    flags: dict[str, bool]
    data: dict[str, int]
    """Rows held; ``courses_restricted`` counts every restricted course.  Assignments and
    enrollments count live rows of live courses: a course marked deleted takes its own
    along (``enrollments_dropped`` counts them)."""
    oldest_pending_passback: dt.datetime | None
    recent_passback_errors: list[str]
    restricted_courses: list[RestrictedCourse] = field(default_factory=list)
    """The first ``RESTRICTED_SHOWN`` restricted courses, longest restricted first."""

    def as_dict(self) -> dict[str, Any]:
        shown = self.summary.as_dict()
        shown.update(self.flags)
        shown["data"] = self.data
        oldest = self.oldest_pending_passback
        shown["oldest_pending_passback"] = oldest.isoformat() if oldest else None
        shown["recent_passback_errors"] = self.recent_passback_errors
        shown["restricted_courses"] = [course.as_dict() for course in self.restricted_courses]
        return shown


_SUMMARY = f"""
SELECT i.id, i.platform_name, i.institution_name, i.base_url, i.is_active,
       i.sync_frequency_hours, i.last_sync_at, i.last_sync_status, i.sync_error_message,
       i.roster_sync_enabled, i.content_sync_enabled, i.grade_passback_enabled,
       CASE WHEN i.is_active AND i.last_sync_status IS DISTINCT FROM 'running'
            THEN {NEXT_DUE} END AS next_sync_at,
       CASE WHEN i.not_before > now() THEN i.not_before END AS not_before,
       CASE WHEN i.last_sync_status = 'running' THEN i.sync_run_id END AS sync_run_id
FROM lms_integrations i
"""
_PASSBACKS = text("""
SELECT c.lms_integration_id, p.status, count(*) AS n,
       count(*) FILTER (WHERE c.access_restricted_since IS NOT NULL) AS held
FROM lms_grade_passbacks p
JOIN lms_assignments a ON a.id = p.lms_assignment_id
JOIN lms_courses c ON c.id = a.lms_course_id
WHERE (CAST(:id AS uuid) IS NULL OR c.lms_integration_id = :id)
GROUP BY c.lms_integration_id, p.status
""")
_DATA = text("""
SELECT
  (SELECT count(*) FROM lms_courses WHERE lms_integration_id = :id AND deleted_at IS NULL)
    AS courses,
  (SELECT count(*) FROM lms_courses WHERE lms_integration_id = :id AND deleted_at IS NOT NULL)
    AS courses_deleted,
  (SELECT count(*) FROM lms_courses WHERE lms_integration_id = :id AND deleted_at IS NULL
      AND access_restricted_since IS NOT NULL) AS courses_restricted,
  (SELECT count(*) FROM lms_assignments a JOIN lms_courses c ON c.id = a.lms_course_id
    WHERE c.lms_integration_id = :id AND c.deleted_at IS NULL AND a.deleted_at IS NULL)
    AS assignments,
  (SELECT count(*) FROM lms_assignments a JOIN lms_courses c ON c.id = a.lms_course_id
    WHERE c.lms_integration_id = :id AND c.deleted_at IS NULL AND a.deleted_at IS NULL
      AND a.toolboxai_quiz_id IS NOT NULL) AS assignments_linked_to_quizzes,
  (SELECT count(*) FROM lms_enrollments e JOIN lms_courses c ON c.id = e.lms_course_id
    WHERE c.lms_integration_id = :id AND c.deleted_at IS NULL
      AND e.enrollment_state <> 'dropped') AS enrollments,
  (SELECT count(*) FROM lms_enrollments e JOIN lms_courses c ON c.id = e.lms_course_id
    WHERE c.lms_integration_id = :id
      AND (e.enrollment_state = 'dropped' OR c.deleted_at IS NOT NULL)) AS enrollments_dropped,
  (SELECT count(*) FROM lms_user_links WHERE lms_integration_id = :id) AS linked_users
""")
_PASSBACK_ERRORS = text("""
SELECT p.id, p.status, p.attempt_count, p.error_message, p.next_attempt_at
FROM lms_grade_passbacks p
JOIN lms_assignments a ON a.id = p.lms_assignment_id
JOIN lms_courses c ON c.id = a.lms_course_id
WHERE c.lms_integration_id = :id AND p.error_message IS NOT NULL
  AND p.status IN ('pending', 'failed')
ORDER BY p.updated_at DESC LIMIT 5
""")
_RESTRICTED = text("""
SELECT external_course_id, title, access_restricted_since FROM lms_courses
WHERE lms_integration_id = :id AND deleted_at IS NULL AND access_restricted_since IS NOT NULL
ORDER BY access_restricted_since, external_course_id LIMIT :shown
""")
_RECORDED = text("""
SELECT last_sync_status, sync_error_message,
       coalesce(last_sync_status = 'running'
                AND sync_run_id IS NOT DISTINCT FROM CAST(:run_id AS uuid), false) AS claimed
FROM lms_integrations WHERE id = :id
""")
_OLDEST_PENDING = text("""
SELECT min(p.score_timestamp) FROM lms_grade_passbacks p
JOIN lms_assignments a ON a.id = p.lms_assignment_id
JOIN lms_courses c ON c.id = a.lms_course_id
WHERE c.lms_integration_id = :id AND p.status IN ('pending', 'sending')
""")


def list_integrations(
    connection: Connection, policy: SyncPolicy | None = None
) -> list[IntegrationSummary]:
    """Every integration, oldest first, with its passback counts by status."""
    rows = connection.execute(
        text(_SUMMARY + " ORDER BY i.created_at, i.id"), due_params(policy or SyncPolicy())
    ).all()
    counts = _passback_counts(connection, None)
    return [_summary(row, *counts.get(row.id, ({}, 0))) for row in rows]


def integration_detail(
    connection: Connection, integration_id: uuid.UUID, policy: SyncPolicy | None = None
) -> IntegrationDetail:
    row = connection.execute(
        text(_SUMMARY + " WHERE i.id = :id"),
        {**due_params(policy or SyncPolicy()), "id": integration_id},
    ).one_or_none()
    if row is None:
        raise NotFound(f"no LMS integration {integration_id}")
    counts = _passback_counts(connection, integration_id).get(integration_id, ({}, 0))
    data = connection.execute(_DATA, {"id": integration_id}).one()._asdict()
    errors = [
        f"{error.id} {error.status} after {error.attempt_count} attempt(s): {error.error_message}"
        for error in connection.execute(_PASSBACK_ERRORS, {"id": integration_id})
    ]
    restricted = [
        RestrictedCourse(course.external_course_id, course.title, course.access_restricted_since)
        for course in connection.execute(
            _RESTRICTED, {"id": integration_id, "shown": RESTRICTED_SHOWN}
        )
    ]
    return IntegrationDetail(
        summary=_summary(row, *counts),
        flags={
            "roster_sync_enabled": row.roster_sync_enabled,
            "content_sync_enabled": row.content_sync_enabled,
            "grade_passback_enabled": row.grade_passback_enabled,
        },
        data={key: int(value) for key, value in data.items()},
        oldest_pending_passback=connection.execute(
            _OLDEST_PENDING, {"id": integration_id}
        ).scalar_one(),
        recent_passback_errors=errors,
        restricted_courses=restricted,
    )


class RecordedEnd(NamedTuple):
    """What ``lms_integrations`` says of a sync run after it stopped (``recorded_end``)."""

    status: str | None
    message: str | None
    claimed: bool
    """The row still holds the run's claim (``running``, its run id): no end was recorded."""


def recorded_end(
    connection: Connection,
    integration_id: uuid.UUID,
    run_id: uuid.UUID | None,
    *,
    within: float | None = None,
) -> RecordedEnd:
    """What the row recorded of run ``run_id``; ``within``: seconds the read may take.

    For a command that was stopped: it says what was written, not what was meant
    to be (a second signal, a lock or the database may have kept it from the row).
    """
    if within is not None:
        limit_statements(connection, within)
    row = connection.execute(_RECORDED, {"id": integration_id, "run_id": run_id}).one_or_none()
    if row is None:
        return RecordedEnd(None, None, claimed=False)
    return RecordedEnd(row.last_sync_status, row.sync_error_message, row.claimed)


def resolve_id(connection: Connection, value: str) -> uuid.UUID:
    """A full integration id, or a unique prefix of one (at least 4 characters)."""
    return resolve_prefix(connection, value, table="lms_integrations", noun="LMS integration")


def _passback_counts(
    connection: Connection, integration_id: uuid.UUID | None
) -> dict[uuid.UUID, tuple[dict[str, int], int]]:
    """Per integration: grades by status, and how many pending ones are held."""
    counts: dict[uuid.UUID, dict[str, int]] = {}
    held: dict[uuid.UUID, int] = {}
    for row in connection.execute(_PASSBACKS, {"id": integration_id}):
        counts.setdefault(row.lms_integration_id, dict.fromkeys(PASSBACK_STATUSES, 0))
        counts[row.lms_integration_id][row.status] = int(row.n)
        if row.status == "pending":
            held[row.lms_integration_id] = int(row.held)
    return {key: (value, held.get(key, 0)) for key, value in counts.items()}


def _summary(row: Any, passbacks: dict[str, int], held: int = 0) -> IntegrationSummary:
    return IntegrationSummary(
        id=row.id,
        platform=row.platform_name,
        institution=row.institution_name,
        base_url=redact(row.base_url),
        is_active=row.is_active,
        sync_frequency_hours=row.sync_frequency_hours,
        last_sync_at=row.last_sync_at,
        last_sync_status=row.last_sync_status,
        sync_error_message=row.sync_error_message,
        next_sync_at=row.next_sync_at,
        not_before=row.not_before,
        sync_run_id=row.sync_run_id,
        passbacks=passbacks or dict.fromkeys(PASSBACK_STATUSES, 0),
        passbacks_held=held,
    )
