"""Which quiz stands for which LMS assignment: the link grade passback follows.

A completed attempt gets a grade for an LMS assignment only when the
assignment is linked to the attempt's quiz (``lms_assignments.toolboxai_quiz_id``,
read by ``lms.passback.record_attempt_completion``).  A sync reads the
assignments but never links them: which quiz a teacher's assignment stands
for is the school's word, given here (``toolbox lms link``, or these
functions from a service).  Syncs never write the column, so a link stays
while the LMS lists the assignment.

Linking is idempotent: the link already held changes nothing.  Another quiz
replaces the link.  A link counts from the moment it is made: an attempt
completed before it got no grade for the assignment, and linking writes none
(``LinkChange.unsent_attempts`` counts them): sending old scores into a
gradebook (last term's attempts of a reused quiz, practice runs) is not a
choice a link should make.  A service that wants one sent calls
``record_attempt_completion`` for that attempt: it writes the grade the
attempt would have had, timestamped at its completion.  Unlinking stops
further grades; those already recorded for the assignment are still sent
(``LinkChange.pending_grades``).
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Row, text

from models.errors import NotFound, ValidationFailed, quoted
from models.ids import parse_id


@dataclass(frozen=True)
class AssignmentLink:
    """One LMS assignment of an integration and the quiz whose scores it takes, if any."""

    id: uuid.UUID
    course_external_id: str
    course_title: str
    external_id: str
    title: str
    quiz_id: uuid.UUID | None
    quiz_title: str | None
    grade_passback_enabled: bool
    deleted: bool
    """The LMS no longer lists it, or its course: no grade is written for it."""

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["id"] = str(self.id)
        shown["quiz_id"] = str(self.quiz_id) if self.quiz_id else None
        return shown


@dataclass(frozen=True)
class LinkChange:
    """What ``link_assignment`` or ``unlink_assignment`` did."""

    integration_id: uuid.UUID
    assignment: AssignmentLink
    """As it is now."""
    previous_quiz_id: uuid.UUID | None
    passback_enabled: bool
    """Whether grades go out at all: the integration's and the assignment's switches."""
    unsent_attempts: int = 0
    """Attempts at the linked quiz completed before the link by the course's enrolled
    students, without a grade for the assignment: linking sends none of them."""
    pending_grades: int = 0
    """Grades already recorded for the assignment and not yet sent: they still go out."""

    @property
    def changed(self) -> bool:
        return self.assignment.quiz_id != self.previous_quiz_id

    def as_dict(self) -> dict[str, Any]:
        return {
            "integration_id": str(self.integration_id),
            "assignment": self.assignment.as_dict(),
            "previous_quiz_id": str(self.previous_quiz_id) if self.previous_quiz_id else None,
            "changed": self.changed,
            "passback_enabled": self.passback_enabled,
            "unsent_attempts": self.unsent_attempts,
            "pending_grades": self.pending_grades,
        }


_COLUMNS = """
SELECT a.id, c.external_course_id, c.title AS course_title, a.external_assignment_id,
       a.title, a.toolboxai_quiz_id, q.title AS quiz_title, a.grade_passback_enabled,
       (a.deleted_at IS NOT NULL OR c.deleted_at IS NOT NULL) AS deleted
FROM lms_assignments a
JOIN lms_courses c ON c.id = a.lms_course_id
LEFT JOIN quizzes q ON q.id = a.toolboxai_quiz_id
WHERE c.lms_integration_id = :integration
"""
_LIST = text(
    _COLUMNS
    + " AND ((a.deleted_at IS NULL AND c.deleted_at IS NULL) OR a.toolboxai_quiz_id IS NOT NULL)"
    " AND (CAST(:course AS text) IS NULL OR c.external_course_id = :course)"
    " AND (NOT :linked_only OR a.toolboxai_quiz_id IS NOT NULL)"
    " ORDER BY c.external_course_id, a.external_assignment_id"
)
"""Live assignments, and those the LMS dropped that still hold a link."""
_FIND = text(
    _COLUMNS + " AND a.external_assignment_id = :assignment"
    " AND (CAST(:course AS text) IS NULL OR c.external_course_id = :course)"
    " ORDER BY c.external_course_id FOR UPDATE OF a"
)
_INTEGRATION = text("SELECT grade_passback_enabled FROM lms_integrations WHERE id = :id")
_QUIZ = text("SELECT title FROM quizzes WHERE id = :quiz FOR KEY SHARE")
"""The quiz, kept from deletion until the link is written (its foreign key needs it)."""
_SET = text("UPDATE lms_assignments SET toolboxai_quiz_id = :quiz WHERE id = :id")
_UNSENT = text("""
SELECT count(*) FROM quiz_attempts qa
JOIN lms_assignments a ON a.id = :assignment
JOIN lms_enrollments e ON e.lms_course_id = a.lms_course_id AND e.user_id = qa.user_id
     AND e.role = 'student' AND e.enrollment_state <> 'dropped'
WHERE qa.quiz_id = :quiz AND qa.completed_at IS NOT NULL AND qa.score IS NOT NULL
  AND NOT EXISTS (SELECT FROM lms_grade_passbacks p
                  WHERE p.quiz_attempt_id = qa.id AND p.lms_assignment_id = a.id)
""")
"""The attempts ``record_attempt_completion`` would grade for the assignment, ungraded."""
_PENDING = text(
    "SELECT count(*) FROM lms_grade_passbacks"
    " WHERE lms_assignment_id = :assignment AND status IN ('pending', 'sending')"
)


def assignment_links(
    connection: Connection,
    integration_id: uuid.UUID,
    *,
    course_external_id: str | None = None,
    linked_only: bool = False,
) -> list[AssignmentLink]:
    """The integration's assignments (of one course, or only the linked ones) with their
    quizzes, by course and assignment id; one the LMS dropped shows while it holds a link."""
    integration_id = parse_id(integration_id, noun="LMS integration", field="integration_id")
    _passback_enabled(connection, integration_id)
    rows = connection.execute(
        _LIST,
        {"integration": integration_id, "course": course_external_id, "linked_only": linked_only},
    )
    return [_link(row) for row in rows]


def link_assignment(
    connection: Connection,
    integration_id: uuid.UUID,
    external_assignment_id: str,
    quiz_id: uuid.UUID,
    *,
    course_external_id: str | None = None,
) -> LinkChange:
    """Send the scores of ``quiz_id``'s attempts completed from now on to the assignment.

    ``external_assignment_id`` is the LMS's id of the assignment, as a sync stored it;
    ``course_external_id`` names its course when the id is in several.  In the caller's
    transaction (a ``Session``'s: ``session.connection()``).  ``NotFound`` for an unknown
    integration, quiz or assignment; ``ValidationFailed`` for one the LMS no longer lists.
    """
    integration_id = parse_id(integration_id, noun="LMS integration", field="integration_id")
    quiz_id = parse_id(quiz_id, noun="quiz", field="quiz_id")
    enabled = _passback_enabled(connection, integration_id)
    quiz = connection.execute(_QUIZ, {"quiz": quiz_id}).one_or_none()
    if quiz is None:
        raise NotFound(f"no quiz {quiz_id}")
    found = _assignment(connection, integration_id, external_assignment_id, course_external_id)
    if found.deleted:
        raise ValidationFailed(
            f"assignment {quoted(found.external_id)} of course "
            f"{quoted(found.course_external_id)} is marked deleted: the LMS no longer lists it"
            " (or its course), so no grade would be sent to it",
            errors=["external_assignment_id: marked deleted"],
        )
    linked = dataclasses.replace(found, quiz_id=quiz_id, quiz_title=quiz.title)
    return _change(connection, integration_id, found, linked, enabled)


def unlink_assignment(
    connection: Connection,
    integration_id: uuid.UUID,
    external_assignment_id: str,
    *,
    course_external_id: str | None = None,
) -> LinkChange:
    """Write no further grade for the assignment; those recorded already are still sent.

    As ``link_assignment``; an assignment that is not linked changes nothing, and one the
    LMS no longer lists may be unlinked too.
    """
    integration_id = parse_id(integration_id, noun="LMS integration", field="integration_id")
    enabled = _passback_enabled(connection, integration_id)
    found = _assignment(connection, integration_id, external_assignment_id, course_external_id)
    unlinked = dataclasses.replace(found, quiz_id=None, quiz_title=None)
    return _change(connection, integration_id, found, unlinked, enabled)


def _change(
    connection: Connection,
    integration_id: uuid.UUID,
    found: AssignmentLink,
    now: AssignmentLink,
    integration_enabled: bool,
) -> LinkChange:
    """Write ``now``'s quiz over ``found``'s (nothing when it holds it already)."""
    if found.quiz_id != now.quiz_id:
        connection.execute(_SET, {"id": found.id, "quiz": now.quiz_id})
    unsent = 0
    if now.quiz_id is not None:
        unsent = connection.execute(
            _UNSENT, {"assignment": found.id, "quiz": now.quiz_id}
        ).scalar_one()
    return LinkChange(
        integration_id=integration_id,
        assignment=now,
        previous_quiz_id=found.quiz_id,
        passback_enabled=integration_enabled and found.grade_passback_enabled,
        unsent_attempts=int(unsent),
        pending_grades=int(connection.execute(_PENDING, {"assignment": found.id}).scalar_one()),
    )


def _passback_enabled(connection: Connection, integration_id: uuid.UUID) -> bool:
    """The integration's ``grade_passback_enabled``; ``NotFound`` when there is none."""
    enabled = connection.execute(_INTEGRATION, {"id": integration_id}).scalar_one_or_none()
    if enabled is None:
        raise NotFound(f"no LMS integration {integration_id}")
    return bool(enabled)


def _assignment(
    connection: Connection, integration_id: uuid.UUID, external_id: str, course: str | None
) -> AssignmentLink:
    """The one assignment ``external_id`` (of ``course``) names, its row locked.

    Assignment ids are unique per course only: one in several courses must be
    given its course.  A live assignment is preferred to rows the LMS dropped.
    """
    if not isinstance(external_id, str) or not external_id.strip():
        raise ValidationFailed(
            "external_assignment_id: give the LMS's id of the assignment",
            errors=["external_assignment_id: empty"],
        )
    params = {"integration": integration_id, "assignment": external_id, "course": course}
    rows = [_link(row) for row in connection.execute(_FIND, params)]
    live = [row for row in rows if not row.deleted]
    candidates = live or rows
    in_course = f" in course {quoted(course)}" if course is not None else ""
    if not candidates:
        raise NotFound(
            f"LMS integration {integration_id} has no assignment {quoted(external_id)}"
            f"{in_course} (assignments come from its syncs; `toolbox lms assignments "
            f"{integration_id}` lists them)"
        )
    if len(candidates) > 1:
        courses = ", ".join(quoted(row.course_external_id) for row in candidates)
        raise ValidationFailed(
            f"assignment {quoted(external_id)} is in {len(candidates)} courses of LMS"
            f" integration {integration_id} ({courses}): name its course",
            errors=["course_external_id: several courses hold the assignment"],
        )
    return candidates[0]


def _link(row: Row[Any]) -> AssignmentLink:
    return AssignmentLink(
        id=row.id,
        course_external_id=row.external_course_id,
        course_title=row.course_title,
        external_id=row.external_assignment_id,
        title=row.title,
        quiz_id=row.toolboxai_quiz_id,
        quiz_title=row.quiz_title,
        grade_passback_enabled=row.grade_passback_enabled,
        deleted=row.deleted,
    )
