"""LMS records as column values, and the ``sync_hash`` that says whether they changed.

The hash is the SHA-256 of a canonical JSON (sorted keys, no spaces, decimals
and times in one spelling) of exactly the values sync would write, after
clipping to the column sizes, so an unchanged record hashes the same on
every run and writes nothing.  ``raw_data`` is a snapshot, not part of the hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from lms.base import Assignment, Course, RosterEntry
from models.errors import ValidationFailed

#: Livelier first: a user listed twice in a course keeps the liveliest state.
STATE_ORDER = ("active", "invited", "inactive", "completed", "dropped")
#: With equal states, the role that matters most for the course wins.
ROLE_ORDER = ("teacher", "ta", "admin", "student", "observer")
EXTERNAL_ID_LENGTH = 100
ASSIGNMENT_ID_LENGTH = 500
"""LTI names line items by URL, so assignment ids get a wider column."""


def canonical_json(values: Mapping[str, Any]) -> str:
    return json.dumps(
        values, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_plain
    )


def sync_hash(values: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical_json(values).encode()).hexdigest()


def json_safe(raw: Mapping[str, Any]) -> dict[str, Any]:
    """``raw`` as plain JSON types (clients may hand over decimals or times)."""
    loaded = json.loads(json.dumps(raw, default=_plain))
    return loaded if isinstance(loaded, dict) else {}


def external_id(value: str, what: str, limit: int = EXTERNAL_ID_LENGTH) -> str:
    """An id that fits its column; a longer one is a clear error, never a truncated key."""
    if not value:
        raise ValidationFailed(f"{what} has an empty id")
    if len(value) > limit:
        raise ValidationFailed(
            f"{what} id is {len(value)} characters long; at most {limit} are stored"
        )
    return value


def course_values(course: Course) -> dict[str, Any]:
    grade = course.grade_level if course.grade_level and 1 <= course.grade_level <= 12 else None
    return {
        "external_course_id": external_id(course.external_id, "a course"),
        "title": clip(course.title, 200) or course.external_id,
        "description": course.description,
        "subject": clip(course.subject, 50),
        "grade_level": grade,
        "instructor_name": clip(course.instructor_name, 200),
        "instructor_email": clip(course.instructor_email, 255),
        "start_date": course.start_date,
        "end_date": course.end_date,
    }


def assignment_values(assignment: Assignment) -> dict[str, Any]:
    return {
        "external_assignment_id": external_id(
            assignment.external_id, "an assignment", ASSIGNMENT_ID_LENGTH
        ),
        "title": clip(assignment.title, 200) or assignment.external_id,
        "description": assignment.description,
        "assignment_type": clip(assignment.assignment_type, 50),
        "points_possible": _points(assignment.points_possible, assignment.external_id),
        "due_date": assignment.due_at,
        "unlock_date": assignment.unlock_at,
        "lock_date": assignment.lock_at,
    }


def roster_values(entry: RosterEntry) -> dict[str, Any]:
    """The roster line as hashed; names and addresses count, so their changes are seen."""
    return {
        "external_user_id": external_id(entry.external_user_id, "a roster member"),
        "role": entry.role,
        "enrollment_state": entry.state,
        "given_name": entry.given_name,
        "family_name": entry.family_name,
        "email": entry.email,
        "username": entry.username,
    }


def merge_roster(entries: Iterable[RosterEntry]) -> list[RosterEntry]:
    """One entry per user (the table holds one row per user and course), in a stable order."""
    best: dict[str, RosterEntry] = {}
    for entry in entries:
        held = best.get(entry.external_user_id)
        if held is None or _rank(entry) < _rank(held):
            best[entry.external_user_id] = entry
    return [best[key] for key in sorted(best)]


def clip(value: str | None, length: int) -> str | None:
    if value is None:
        return None
    value = value.strip()
    return value[:length] or None


def _rank(entry: RosterEntry) -> tuple[int, int]:
    return STATE_ORDER.index(entry.state), ROLE_ORDER.index(entry.role)


def _points(value: Decimal | None, assignment_id: str) -> Decimal | None:
    """Points as ``Numeric(8, 2)`` stores them, so the hash matches what is read back."""
    if value is None:
        return None
    if not value.is_finite() or abs(value) >= Decimal("1000000"):
        raise ValidationFailed(f"assignment {assignment_id}: points_possible {value} out of range")
    return value.quantize(Decimal("0.01"))


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return moment.astimezone(dt.UTC).isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)
