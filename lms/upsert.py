"""Write one course as the LMS showed it: the course row, its assignments and its roster.

The caller runs this in one transaction per course, after every page of the
course was read, so a course is written whole or not at all.  A row is
inserted or updated only when its ``sync_hash`` (or its deleted/dropped
mark) differs, so a re-sync of unchanged data writes nothing at all, not even
``last_synced_at``.  Rows the LMS stopped listing are marked
(``deleted_at``, ``enrollment_state='dropped'`` + ``dropped_at``), never
deleted, and are un-marked when they come back.  A ``restricted`` course (listed,
its details withheld) is inserted with what the LMS shows, or kept as the last
full read wrote it: only a ``deleted_at`` mark goes, as it is listed.  Its
``access_restricted_since`` is set by the first sync that finds it so and kept
(no write) by the later ones; a full read clears it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from sqlalchemy import (
    Connection,
    String,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, UUID

from lms.base import Assignment, Course, RosterEntry
from lms.people import resolve_users
from lms.rows import (
    assignment_values,
    course_values,
    external_id,
    json_safe,
    merge_roster,
    roster_values,
    sync_hash,
)
from models.lms import LMSAssignment, LMSCourse, LMSEnrollment

_IDS = ARRAY(UUID(as_uuid=True))
_TEXTS = ARRAY(String)
_courses = cast(Table, LMSCourse.__table__)
_assignments = cast(Table, LMSAssignment.__table__)
_enrollments = cast(Table, LMSEnrollment.__table__)


@dataclass(frozen=True)
class CourseSnapshot:
    """Everything read for one course; ``None`` when that part is not synced."""

    course: Course
    roster: Sequence[RosterEntry] | None
    assignments: Sequence[Assignment] | None


@dataclass
class Counts:
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    removed: int = 0
    """Marked deleted (assignments) or dropped (enrollments): the LMS no longer lists them."""

    def add(self, other: Counts) -> None:
        self.inserted += other.inserted
        self.updated += other.updated
        self.unchanged += other.unchanged
        self.removed += other.removed


@dataclass
class CourseWrite:
    course_id: uuid.UUID
    course: Counts = field(default_factory=Counts)
    assignments: Counts = field(default_factory=Counts)
    enrollments: Counts = field(default_factory=Counts)


def write_course(
    connection: Connection, integration_id: uuid.UUID, snapshot: CourseSnapshot
) -> CourseWrite:
    now = connection.execute(select(func.now())).scalar_one()
    roster = merge_roster(snapshot.roster) if snapshot.roster is not None else None
    active = None if roster is None else sum(entry.state != "dropped" for entry in roster)
    course_id, course_counts = _upsert_course(
        connection, integration_id, snapshot.course, active, now
    )
    result = CourseWrite(course_id, course_counts)
    if snapshot.assignments is not None:
        result.assignments = _sync_assignments(connection, course_id, snapshot.assignments, now)
    if roster is not None:
        result.enrollments = _sync_roster(connection, integration_id, course_id, roster, now)
    return result


def mark_missing_courses(
    connection: Connection, integration_id: uuid.UUID, listed: Sequence[str]
) -> int:
    """Mark the courses the LMS no longer lists, and their rows; only call after a
    complete course list.  Returns how many courses it marked.

    A course marked deleted takes its assignments (``deleted_at``) and roster
    (``dropped`` + ``dropped_at``) along in the same transaction: the LMS lists
    them no more either (404 under a deleted course), and left live they were
    counted and a student stayed enrolled in a course that is gone.  Rows of a
    course marked before this rule are marked too.  A course listed again is read
    in full, and its rows the LMS lists come back (``write_course``).
    """
    marked = connection.execute(
        update(_courses)
        .where(
            _courses.c.lms_integration_id == integration_id,
            _courses.c.deleted_at.is_(None),
            ~(_courses.c.external_course_id == any_(bindparam("listed", list(listed), _TEXTS))),
        )
        .values(deleted_at=func.now())
    )
    gone = select(_courses.c.id).where(
        _courses.c.lms_integration_id == integration_id, _courses.c.deleted_at.isnot(None)
    )
    connection.execute(
        update(_assignments)
        .where(_assignments.c.lms_course_id.in_(gone), _assignments.c.deleted_at.is_(None))
        .values(deleted_at=func.now())
    )
    connection.execute(
        update(_enrollments)
        .where(
            _enrollments.c.lms_course_id.in_(gone),
            _enrollments.c.enrollment_state != "dropped",
        )
        .values(enrollment_state="dropped", dropped_at=func.now())
    )
    return marked.rowcount


def _upsert_course(
    connection: Connection,
    integration_id: uuid.UUID,
    course: Course,
    active: int | None,
    now: dt.datetime,
) -> tuple[uuid.UUID, Counts]:
    held = connection.execute(
        select(
            _courses.c.id,
            _courses.c.sync_hash,
            _courses.c.deleted_at,
            _courses.c.enrollment_count,
            _courses.c.access_restricted_since,
        ).where(
            _courses.c.lms_integration_id == integration_id,
            _courses.c.external_course_id == external_id(course.external_id, "a course"),
        )
    ).one_or_none()
    if held is None:
        row, _ = _course_row(course, now)
        inserted = connection.execute(
            insert(_courses)
            .values(
                **row,
                lms_integration_id=integration_id,
                enrollment_count=active or 0,
                access_restricted_since=now if course.restricted else None,
            )
            .returning(_courses.c.id)
        ).scalar_one()
        return inserted, Counts(inserted=1)
    if course.restricted:  # shown without its details: keep what the last full read wrote
        row, digest = {}, held.sync_hash
        since = held.access_restricted_since or now
    else:
        row, digest = _course_row(course, now)
        since = None
    count = held.enrollment_count if active is None else active
    if (held.sync_hash, held.deleted_at, held.enrollment_count, held.access_restricted_since) == (
        digest, None, count, since
    ):  # fmt: skip
        return held.id, Counts(unchanged=1)
    connection.execute(
        update(_courses)
        .where(_courses.c.id == held.id)
        .values(**row, deleted_at=None, enrollment_count=count, access_restricted_since=since)
    )
    return held.id, Counts(updated=1)


def _course_row(course: Course, now: dt.datetime) -> tuple[dict[str, Any], str]:
    """The course's columns as the LMS shows them, and their ``sync_hash``."""
    values = course_values(course)
    digest = sync_hash(values)
    row = {**values, "sync_hash": digest, "raw_data": json_safe(course.raw), "last_synced_at": now}
    return row, digest


def _sync_assignments(
    connection: Connection,
    course_id: uuid.UUID,
    assignments: Sequence[Assignment],
    now: dt.datetime,
) -> Counts:
    table = _assignments
    held = {
        row.external_assignment_id: row
        for row in connection.execute(
            select(table.c.id, table.c.external_assignment_id, table.c.sync_hash,
                   table.c.deleted_at)
            .where(table.c.lms_course_id == course_id)
        )
    }  # fmt: skip
    counts = Counts()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    seen: set[str] = set()
    for assignment in assignments:
        values = assignment_values(assignment)
        key = values["external_assignment_id"]
        if key in seen:
            continue  # listed twice (paging shifted under us): the first copy wins
        seen.add(key)
        digest = sync_hash(values)
        row = {**values, "sync_hash": digest, "raw_data": json_safe(assignment.raw)}
        old = held.get(key)
        if old is None:
            inserts.append({**row, "lms_course_id": course_id, "last_synced_at": now})
        elif old.sync_hash != digest or old.deleted_at is not None:
            updates.append({**row, "b_id": old.id, "last_synced_at": now, "deleted_at": None})
        else:
            counts.unchanged += 1
    gone = [old.id for key, old in held.items() if key not in seen and old.deleted_at is None]
    _write(connection, table, inserts, updates)
    if gone:
        connection.execute(
            update(table)
            .where(table.c.id == any_(bindparam("ids", gone, _IDS)))
            .values(deleted_at=now)
        )
    counts.inserted, counts.updated, counts.removed = len(inserts), len(updates), len(gone)
    return counts


def _sync_roster(
    connection: Connection,
    integration_id: uuid.UUID,
    course_id: uuid.UUID,
    roster: Sequence[RosterEntry],
    now: dt.datetime,
) -> Counts:
    table = _enrollments
    held = {
        row.external_user_id: row
        for row in connection.execute(
            select(table.c.id, table.c.external_user_id, table.c.user_id, table.c.sync_hash,
                   table.c.enrollment_state, table.c.dropped_at)
            .where(table.c.lms_course_id == course_id)
        )
    }  # fmt: skip
    hashed = [(entry, roster_values(entry)) for entry in roster]  # validates ids first
    users = resolve_users(connection, integration_id, roster) if roster else {}
    counts = Counts()
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for entry, values in hashed:
        digest = sync_hash(values)
        user_id = users[entry.external_user_id]
        old = held.get(entry.external_user_id)
        dropped = entry.state == "dropped"
        row = {
            "user_id": user_id,
            "role": entry.role,
            "enrollment_state": entry.state,
            "sync_hash": digest,
            "raw_data": json_safe(entry.raw),
            "last_synced_at": now,
        }
        if old is None:
            inserts.append(
                {**row, "lms_course_id": course_id, "external_user_id": entry.external_user_id,
                 "dropped_at": now if dropped else None}
            )  # fmt: skip
        elif (old.sync_hash, old.enrollment_state, old.user_id) != (digest, entry.state, user_id):
            dropped_at = (old.dropped_at or now) if dropped else None
            updates.append({**row, "b_id": old.id, "dropped_at": dropped_at})
        else:
            counts.unchanged += 1
    listed = {entry.external_user_id for entry in roster}
    gone = [
        old.id
        for key, old in held.items()
        if key not in listed and old.enrollment_state != "dropped"
    ]
    _write(connection, table, inserts, updates)
    if gone:
        connection.execute(
            update(table)
            .where(table.c.id == any_(bindparam("ids", gone, _IDS)))
            .values(enrollment_state="dropped", dropped_at=now)
        )
    counts.inserted, counts.updated, counts.removed = len(inserts), len(updates), len(gone)
    return counts


def _write(
    connection: Connection,
    table: Table,
    inserts: list[dict[str, Any]],
    updates: list[dict[str, Any]],
) -> None:
    if inserts:
        connection.execute(insert(table), inserts)
    if updates:
        connection.execute(update(table).where(table.c.id == bindparam("b_id")), updates)
