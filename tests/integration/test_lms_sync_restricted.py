"""Sync of Canvas courses restricted by date (``access_restricted_by_date``), on real PostgreSQL.

Canvas lists such a course with its id (perhaps its name) and nothing else, and
refuses its enrollments and assignments (401): the sync keeps what it stored.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text

from lms.schedule import claim_now
from tests.integration.lms_support import add_canvas, count_writes, scalar, sync, writes
from tests.integration.test_lms_cli import toolbox
from tests.integration.test_lms_sync import _run_sync_task
from tests.lms.fakes import Dataset, FakeCanvas

COURSE = "SELECT * FROM lms_courses WHERE external_course_id = :c"
HELD = (
    "SELECT (SELECT count(*) FROM lms_assignments a WHERE a.lms_course_id = c.id"
    "         AND a.deleted_at IS NULL),"
    "       (SELECT count(*) FROM lms_enrollments e WHERE e.lms_course_id = c.id"
    "         AND e.enrollment_state <> 'dropped')"
    " FROM lms_courses c WHERE c.external_course_id = :c"
)


@pytest.fixture
def data(canvas: FakeCanvas) -> Dataset:
    return canvas.data


@pytest.fixture
def canvas() -> Iterator[FakeCanvas]:
    """Three courses, each with a teacher, 4 students and 2 assignments."""
    school = Dataset.generate(courses=3, students_per_course=4, assignments_per_course=2)
    with FakeCanvas(school) as server:
        yield server


def test_a_course_restricted_after_a_full_read_keeps_its_row_assignments_and_roster(
    engine: Engine, integration: uuid.UUID, data: Dataset, canvas: FakeCanvas
) -> None:
    assert sync(engine, integration).status == "success"
    course = next(iter(data.courses.values()))
    stored = _row(engine, course.id)
    assert stored["start_date"] is not None and stored["instructor_name"] == "Teacher Of1"
    assert _held(engine, course.id) == (2, 5)
    canvas.restrict_by_date(course.id)  # Canvas now shows {"id", "access_restricted_by_date"}
    reads = len(canvas.requests_to(f"/api/v1/courses/{course.id}/"))
    count_writes(engine)

    report = sync(engine, integration)

    assert (report.status, report.courses_failed, report.errors) == ("success", 0, [])
    assert (report.courses_listed, report.courses_restricted, report.courses_removed) == (3, 1, 0)
    assert report.courses.unchanged == 3
    assert writes(engine) == {}, "a restricted course must not blank (or touch) what is stored"
    assert _row(engine, course.id) == stored  # name, dates, teacher, raw data, last_synced_at
    assert _held(engine, course.id) == (2, 5)
    assert len(canvas.requests_to(f"/api/v1/courses/{course.id}/")) == reads, "nothing asked"

    del canvas.restricted[course.id]  # open again: read in full as before
    course.title = "Reopened"
    again = sync(engine, integration)
    assert (again.status, again.courses_restricted, again.courses.updated) == ("success", 0, 1)
    assert scalar(engine, "SELECT title FROM lms_courses WHERE external_course_id = :c",
                  c=course.id) == "Reopened"  # fmt: skip


def test_with_roster_and_content_sync_off_a_restricted_course_is_not_blanked_either(
    engine: Engine, toolbox_env: dict[str, str], data: Dataset, canvas: FakeCanvas
) -> None:
    """Only the course list is read then: the restricted item itself must not be written."""
    integration = add_canvas(engine, canvas.base_url, canvas.token,
                             roster_sync_enabled=False, content_sync_enabled=False)  # fmt: skip
    course = next(iter(data.courses.values()))
    assert sync(engine, integration).status == "success"
    stored = _row(engine, course.id)
    canvas.restrict_by_date(course.id, shown=("name",))

    report = sync(engine, integration)

    assert _row(engine, course.id) == stored  # was: its id as title, no dates, no teacher
    assert (report.status, report.courses_restricted, report.courses.unchanged) == ("success", 1, 3)


def test_a_restricted_course_that_was_marked_deleted_is_listed_again_with_its_old_fields(
    engine: Engine, integration: uuid.UUID, data: Dataset, canvas: FakeCanvas
) -> None:
    course = next(iter(data.courses.values()))
    assert sync(engine, integration).status == "success"
    stored = _row(engine, course.id)
    del data.courses[course.id]
    assert sync(engine, integration).courses_removed == 1
    data.courses[course.id] = course
    canvas.restrict_by_date(course.id, shown=("name", "uuid"))

    report = sync(engine, integration)

    assert (report.status, report.courses_restricted, report.courses.updated) == ("success", 1, 1)
    back = _row(engine, course.id)
    assert back["deleted_at"] is None
    assert {**back, "deleted_at": None, "updated_at": None} == {
        **stored, "deleted_at": None, "updated_at": None
    }  # fmt: skip
    assert _held(engine, course.id) == (2, 5)


def test_a_course_first_seen_restricted_is_stored_with_what_canvas_shows(
    engine: Engine,
    integration: uuid.UUID,
    data: Dataset,
    canvas: FakeCanvas,
    caplog: pytest.LogCaptureFixture,
) -> None:
    named = data.add_course("Algebra II (ended)", code="ALG-2")
    bare = data.add_course("Not shown")
    data.enroll(named.id, data.add_user().id)
    data.add_assignment(named.id)
    canvas.restrict_by_date(named.id, shown=("name",))
    canvas.restrict_by_date(bare.id)

    with engine.begin() as connection:
        assert claim_now(connection, integration).claimed
    with caplog.at_level(logging.INFO, logger="lms.sync.summary"):
        result = _run_sync_task(integration)  # as a worker runs it

    assert result == {"status": "success", "courses": 5, "failed_courses": 0,
                      "restricted_courses": 2}  # fmt: skip
    assert scalar(engine, "SELECT count(*) FROM lms_courses") == 5
    (line,) = [record.getMessage() for record in caplog.records]
    assert ", 2 course(s) restricted, 0 course(s) failed" in line
    row = _row(engine, named.id)
    assert (row["title"], row["raw_data"]) == (
        "Algebra II (ended)",
        {"id": int(named.id), "name": "Algebra II (ended)", "access_restricted_by_date": True},
    )
    blank = ("description", "subject", "grade_level", "instructor_name", "instructor_email",
             "start_date", "end_date", "deleted_at")  # fmt: skip
    assert [row[key] for key in blank] == [None] * len(blank)
    assert (row["enrollment_count"], _held(engine, named.id)) == (0, (0, 0))
    assert _row(engine, bare.id)["title"] == bare.id  # the id is all Canvas shows
    assert _held(engine, bare.id) == (0, 0)


def test_lms_sync_now_shows_the_restricted_courses(
    integration: uuid.UUID, toolbox_env: dict[str, str], data: Dataset, canvas: FakeCanvas
) -> None:
    canvas.restrict_by_date(next(iter(data.courses)))
    shown = toolbox("lms", "sync", str(integration), "--now", env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    said = " ".join(shown.stdout.split())  # the console wraps at its width
    assert "1 course(s) restricted: listed, but closed to the token for now" in said
    synced = toolbox("lms", "sync", str(integration), "--now", "--json", env=toolbox_env)
    assert synced.returncode == 0, synced.stderr
    report = json.loads(synced.stdout)
    assert (report["courses_listed"], report["courses_restricted"]) == (3, 1)


def _row(engine: Engine, external_course_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(connection.execute(text(COURSE), {"c": external_course_id}).one()._mapping)


def _held(engine: Engine, external_course_id: str) -> tuple[int, int]:
    """(live assignments, enrollments not dropped) stored for the course."""
    with engine.connect() as connection:
        row = connection.execute(text(HELD), {"c": external_course_id}).one()
    return int(row[0]), int(row[1])
