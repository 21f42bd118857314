"""Grade passback rows: created with the attempt, then moved through a small state machine.

::

    pending --claim--> sending --LMS took it / already had it--> success
       ^                  |  \\--permanent refusal, or gave up--> failed
       |                  |
       +--transient error (next_attempt_at = now + capped backoff)
       +--lease expired (the worker died mid-send: next_attempt_at passed while sending)
    pending --a newer grade for the same assignment and student exists--> success (superseded)
    pending, its course closed in the LMS (access_restricted_since): held, never claimed,
       its attempts untouched, until a sync finds the course open again
       --still closed past give_up_after--> failed (the course named)

The payload is fixed when the row is written, in the attempt's transaction:
``score_timestamp`` is the attempt's ``completed_at`` and ``sourced_id`` a
UUID5 of (attempt, assignment).  Every retry sends exactly that, so the
LMS can recognise a grade it already holds (Canvas reads the submission
first, AGS refuses a timestamp that is not newer, OneRoster PUTs at the same
``sourcedId``) and never replaces a newer grade with an older one.  A
regraded attempt (its score changed since its newest grade) gets a new row
timestamped at the regrade (the transaction's time, and always after the
previous grade), with the same ``sourced_id``: the LMS takes it as the
newer grade, and a previous grade still pending is superseded by it.
While ``sending``, ``next_attempt_at`` is the lease's end and doubles as the
claim token: an outcome is written only by the claimer whose lease it is.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from lms.base import GradeSubmission
from models.errors import NotFound, ValidationFailed
from models.ids import kind_of, parse_id

#: Namespace of the deterministic ``sourced_id`` of a passback.
SOURCED_ID_NAMESPACE = uuid.UUID("6f1d3f0e-2b4c-5d8e-9a7b-1c2d3e4f5a6b")
DEFAULT_POINTS = Decimal(100)
CENTS = Decimal("0.01")


@dataclass(frozen=True)
class PassbackPolicy:
    lease: dt.timedelta = dt.timedelta(minutes=15)
    """Longer than one send can take (bounded HTTP retries and timeouts)."""
    batch_size: int = 20
    backoff_base_seconds: float = 30.0
    backoff_cap_seconds: float = 900.0
    """Capped so that after an outage every grade is retried within 15 minutes."""
    give_up_after: dt.timedelta = dt.timedelta(days=7)
    malformed_attempts: int = 5
    """Attempts before a grade whose LMS answers make no sense is marked failed."""
    http_retries: int = 1
    """In-process retries per attempt; the database backoff does the rest."""
    http_timeout_seconds: float = 10.0
    """How long one grade request waits for the LMS (the integration's own timeout if shorter)."""


@dataclass(frozen=True)
class ClaimedGrade:
    id: uuid.UUID
    integration_id: uuid.UUID
    lease_until: dt.datetime
    attempt_count: int
    created_at: dt.datetime
    submission: GradeSubmission


def sourced_id(attempt_id: uuid.UUID, assignment_id: uuid.UUID) -> str:
    return str(uuid.uuid5(SOURCED_ID_NAMESPACE, f"{attempt_id}/{assignment_id}"))


_ATTEMPT = text("SELECT completed_at, score FROM quiz_attempts WHERE id = :attempt")
_TARGETS = text("""
SELECT a.id AS assignment_id, a.points_possible, e.external_user_id, qa.user_id,
       qa.score, qa.completed_at
FROM quiz_attempts qa
JOIN lms_assignments a ON a.toolboxai_quiz_id = qa.quiz_id
     AND a.deleted_at IS NULL AND a.grade_passback_enabled
JOIN lms_courses c ON c.id = a.lms_course_id AND c.deleted_at IS NULL
JOIN lms_integrations i ON i.id = c.lms_integration_id AND i.grade_passback_enabled
JOIN lms_enrollments e ON e.lms_course_id = c.id AND e.user_id = qa.user_id
     AND e.role = 'student' AND e.enrollment_state <> 'dropped'
WHERE qa.id = :attempt
ORDER BY a.id
""")
_LOCK_ATTEMPT = text("SELECT pg_advisory_xact_lock(hashtextextended(CAST(:attempt AS text), 11))")
"""Serialises the callers for one attempt, so two regrades never compare with the same grade."""
_INSERT = text("""
WITH newest AS (
    SELECT percentage, score_timestamp FROM lms_grade_passbacks
    WHERE quiz_attempt_id = :attempt AND lms_assignment_id = :assignment_id
    ORDER BY score_timestamp DESC LIMIT 1)
INSERT INTO lms_grade_passbacks (lms_assignment_id, user_id, external_user_id, score,
    points_possible, percentage, score_timestamp, sourced_id, status, next_attempt_at,
    quiz_attempt_id)
SELECT :assignment_id, :user_id, :external_user_id, :score, :points_possible, :percentage,
    coalesce((SELECT greatest(now(), score_timestamp + interval '1 millisecond') FROM newest),
             CAST(:completed_at AS timestamptz)),
    :sourced_id, 'pending', now(), :attempt
WHERE NOT EXISTS (SELECT FROM newest WHERE percentage = CAST(:percentage AS numeric))
ON CONFLICT (quiz_attempt_id, lms_assignment_id, score_timestamp) DO NOTHING
RETURNING id
""")
"""The attempt's first grade for the assignment, or a regrade's: only when the score differs."""


def record_attempt_completion(db: Session | Connection, attempt_id: uuid.UUID) -> list[uuid.UUID]:
    """Write the passbacks of a completed attempt, in the caller's transaction.

    One row per LMS assignment linked to the attempt's quiz in a course where
    the user is an enrolled (not dropped) student.  Safe to call twice: the
    second call adds nothing, unless the attempt was regraded meanwhile (its
    score differs from its newest grade's): then each assignment gets the new
    grade.  Returns the ids of the rows written now.
    """
    if not isinstance(db, Session | Connection):
        raise ValidationFailed(
            f"db: not a Session or Connection ({kind_of(db)}); pass the one whose"
            " transaction completes the attempt, so the grades are written with it",
            errors=["db: not a Session or Connection"],
        )
    if attempt_id is None:  # an ORM attempt not flushed yet: the database gives its id
        raise ValidationFailed(
            "attempt_id: None; a new attempt gets its id from the database when the"
            " session flushes: call session.flush() first",
            errors=["attempt_id: None"],
        )
    # Checked before any query: a malformed id would abort the caller's transaction.
    attempt_id = parse_id(attempt_id, noun="quiz attempt", field="attempt_id")
    attempt = db.execute(_ATTEMPT, {"attempt": attempt_id}).one_or_none()
    if attempt is None:
        raise NotFound(f"no quiz attempt {attempt_id}")
    if attempt.completed_at is None or attempt.score is None:
        raise ValidationFailed(f"quiz attempt {attempt_id} is not completed with a score yet")
    db.execute(_LOCK_ATTEMPT, {"attempt": attempt_id})
    written = []
    for target in db.execute(_TARGETS, {"attempt": attempt_id}).all():
        points = target.points_possible if target.points_possible is not None else DEFAULT_POINTS
        percentage = Decimal(target.score)
        row_id = db.execute(
            _INSERT,
            {
                "assignment_id": target.assignment_id,
                "user_id": target.user_id,
                "external_user_id": target.external_user_id,
                "score": (percentage * points / 100).quantize(CENTS, ROUND_HALF_UP),
                "points_possible": points,
                "percentage": percentage,
                "completed_at": target.completed_at,
                "sourced_id": sourced_id(attempt_id, target.assignment_id),
                "attempt": attempt_id,
            },
        ).scalar_one_or_none()
        if row_id is not None:
            written.append(row_id)
    return written


_EXPIRED = text("""
UPDATE lms_grade_passbacks SET status = 'pending', next_attempt_at = now(), error_message = :note
WHERE id IN (SELECT id FROM lms_grade_passbacks
             WHERE status = 'sending' AND next_attempt_at <= now() FOR UPDATE SKIP LOCKED)
""")
_OLDER = text("""
SELECT p.id, newer.id AS newer_id FROM lms_grade_passbacks p
CROSS JOIN LATERAL (
    SELECT g.id FROM lms_grade_passbacks g
    WHERE g.lms_assignment_id = p.lms_assignment_id AND g.user_id = p.user_id
      AND g.status IN ('pending', 'sending', 'success')
      AND (g.score_timestamp, g.id) > (p.score_timestamp, p.id)
    ORDER BY g.score_timestamp DESC, g.id DESC LIMIT 1) newer
WHERE p.status = 'pending'
FOR UPDATE OF p SKIP LOCKED
""")
_SUPERSEDE = text("""
UPDATE lms_grade_passbacks SET status = 'success', next_attempt_at = NULL, error_message = NULL,
    response_data = jsonb_build_object('outcome', 'superseded',
        'superseded_by', CAST(:newer_id AS text),
        'detail', 'a newer grade for this assignment and student is sent instead')
WHERE id = :id
""")
_CLAIM = text("""
WITH due AS (
    SELECT p.id, i.id AS integration_id, c.external_course_id, a.external_assignment_id
    FROM lms_grade_passbacks p
    JOIN lms_assignments a ON a.id = p.lms_assignment_id
    JOIN lms_courses c ON c.id = a.lms_course_id
    JOIN lms_integrations i ON i.id = c.lms_integration_id
    WHERE p.status = 'pending' AND p.next_attempt_at <= now()
      AND i.is_active AND i.grade_passback_enabled
      AND (i.not_before IS NULL OR i.not_before <= now())
      AND c.access_restricted_since IS NULL
      AND i.id <> ALL(CAST(:skip AS uuid[]))
      AND NOT EXISTS (SELECT 1 FROM lms_grade_passbacks s
                      WHERE s.lms_assignment_id = p.lms_assignment_id
                        AND s.user_id = p.user_id AND s.status = 'sending')
    ORDER BY p.next_attempt_at, p.score_timestamp
    LIMIT :limit
    FOR UPDATE OF p SKIP LOCKED
)
UPDATE lms_grade_passbacks p
SET status = 'sending', attempt_count = p.attempt_count + 1, last_attempt_at = now(),
    next_attempt_at = now() + :lease
FROM due WHERE p.id = due.id
RETURNING p.id, due.integration_id, due.external_course_id, due.external_assignment_id,
    p.external_user_id, p.score, p.points_possible, p.score_timestamp, p.sourced_id,
    p.attempt_count, p.created_at, p.next_attempt_at AS lease_until
""")


def recover_expired(connection: Connection) -> int:
    """Rows left ``sending`` past their lease (their worker died) become due again."""
    note = "the worker sending this grade stopped before it finished; resending"
    return connection.execute(_EXPIRED, {"note": note}).rowcount


def supersede_older(connection: Connection) -> int:
    """Pending grades with a newer grade for the same assignment and student are not sent."""
    older = connection.execute(_OLDER).all()
    if older:
        connection.execute(
            _SUPERSEDE, [{"id": row.id, "newer_id": str(row.newer_id)} for row in older]
        )
    return len(older)


_CLOSED_TOO_LONG = text("""
SELECT p.id, i.id AS integration_id, i.platform_name, c.external_course_id, c.title,
       c.access_restricted_since
FROM lms_grade_passbacks p
JOIN lms_assignments a ON a.id = p.lms_assignment_id
JOIN lms_courses c ON c.id = a.lms_course_id
JOIN lms_integrations i ON i.id = c.lms_integration_id
WHERE p.status = 'pending' AND c.access_restricted_since IS NOT NULL
  AND p.created_at < now() - :give_up_after
  AND i.is_active AND i.grade_passback_enabled
FOR UPDATE OF p SKIP LOCKED
""")
_GIVE_UP = text("""
UPDATE lms_grade_passbacks SET status = 'failed', next_attempt_at = NULL, error_message = :error
WHERE id = :id
""")
_PLATFORM_NAMES = {"canvas": "Canvas"}


@dataclass(frozen=True)
class GaveUp:
    """A held grade failed because its course stayed closed past ``give_up_after``."""

    id: uuid.UUID
    integration_id: uuid.UUID
    error: str


def fail_held_too_long(connection: Connection, policy: PassbackPolicy) -> list[GaveUp]:
    """Grades held for a closed (restricted) course longer than ``give_up_after`` fail.

    Held grades are never claimed, so ``judge`` never sees them: without this
    they would wait for good.  A disabled integration's grades wait, as all do.
    """
    rows = connection.execute(_CLOSED_TOO_LONG, {"give_up_after": policy.give_up_after}).all()
    failed = [GaveUp(row.id, row.integration_id, _closed_message(row, policy)) for row in rows]
    if failed:
        connection.execute(_GIVE_UP, [{"id": grade.id, "error": grade.error} for grade in failed])
    return failed


def _closed_message(row: Any, policy: PassbackPolicy) -> str:
    name = "" if row.title == row.external_course_id else f" ({row.title!r})"
    lms = _PLATFORM_NAMES.get(row.platform_name, f"the LMS ({row.platform_name})")
    since = row.access_restricted_since.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"gave up after {policy.give_up_after.days} day(s): course {row.external_course_id}"
        f"{name} is closed in {lms} (restricted by date) since {since}; the grade was held"
        " and not sent"
    )


def claim(
    connection: Connection,
    policy: PassbackPolicy,
    skip: Collection[uuid.UUID] = (),
) -> list[ClaimedGrade]:
    """Lease up to ``batch_size`` due grades (oldest grade first), skipping rows others hold,
    the integrations in ``skip``, those whose LMS asked to wait (``not_before``) and the
    grades of courses the LMS keeps closed (``access_restricted_since``: held)."""
    params = {"limit": policy.batch_size, "lease": policy.lease, "skip": list(skip)}
    rows = connection.execute(_CLAIM, params).all()
    grades = [
        ClaimedGrade(
            id=row.id,
            integration_id=row.integration_id,
            lease_until=row.lease_until,
            attempt_count=row.attempt_count,
            created_at=row.created_at,
            submission=GradeSubmission(
                course_external_id=row.external_course_id,
                assignment_external_id=row.external_assignment_id,
                external_user_id=row.external_user_id,
                score=row.score,
                points_possible=row.points_possible or DEFAULT_POINTS,
                timestamp=row.score_timestamp,
                sourced_id=row.sourced_id or str(row.id),
            ),
        )
        for row in rows
    ]
    return sorted(grades, key=lambda grade: grade.submission.timestamp)


_OUTCOME = text("""
UPDATE lms_grade_passbacks
SET status = :status, error_message = :error, response_data = :data,
    next_attempt_at = CASE WHEN :retry THEN now() + :delay END,
    attempt_count = attempt_count - CAST(:unspent AS integer)
WHERE id = :id AND status = 'sending' AND next_attempt_at = :lease_until
""").bindparams(bindparam("data", type_=JSONB))


def record_outcome(
    connection: Connection,
    grade: ClaimedGrade,
    status: str,
    *,
    error: str | None = None,
    data: dict[str, Any] | None = None,
    delay: dt.timedelta = dt.timedelta(0),
    unspent: bool = False,
) -> bool:
    """Write the end of one attempt; False when the lease was lost (someone else owns it now).

    ``unspent`` gives the attempt back (the grade was released unsent).
    """
    written = connection.execute(
        _OUTCOME,
        {
            "id": grade.id,
            "lease_until": grade.lease_until,
            "status": status,
            "retry": status == "pending",
            "error": error,
            "data": data,
            "delay": delay,
            "unspent": int(unspent),
        },
    )
    return written.rowcount == 1
