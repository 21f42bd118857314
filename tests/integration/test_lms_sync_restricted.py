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
from lms.status import RESTRICTED_SHOWN, integration_detail
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
    assert (report.courses.updated, report.courses.unchanged) == (1, 2)
    # One write: the mark that it is restricted (and since when), nothing blanked.
    assert writes(engine) == {"lms_courses:UPDATE": 1}
    marked = _row(engine, course.id)
    since = marked["access_restricted_since"]
    assert since is not None and since >= stored["last_synced_at"]
    assert _unmarked(marked) == _unmarked(stored)  # name, dates, teacher, raw data, last_synced_at
    assert _held(engine, course.id) == (2, 5)
    assert len(canvas.requests_to(f"/api/v1/courses/{course.id}/")) == reads, "nothing asked"

    for _ in range(2):  # still restricted: the mark is kept, and nothing is written at all
        later = sync(engine, integration)
        assert (later.courses_restricted, later.courses.unchanged) == (1, 3)
        assert writes(engine) == {}, "a restricted course must not blank (or touch) what is stored"
        assert _row(engine, course.id) == marked

    del canvas.restricted[course.id]  # open again: read in full as before
    course.title = "Reopened"
    again = sync(engine, integration)
    assert (again.status, again.courses_restricted, again.courses.updated) == ("success", 0, 1)
    reopened = _row(engine, course.id)
    assert (reopened["title"], reopened["access_restricted_since"]) == ("Reopened", None)


def test_a_course_open_again_but_unchanged_loses_its_restricted_mark(
    engine: Engine, integration: uuid.UUID, data: Dataset, canvas: FakeCanvas
) -> None:
    """Its hash is what it was: only the mark tells the row apart, and it must still go."""
    course = next(iter(data.courses))
    assert sync(engine, integration).status == "success"
    canvas.restrict_by_date(course)
    assert sync(engine, integration).courses.updated == 1
    assert _row(engine, course)["access_restricted_since"] is not None
    del canvas.restricted[course]
    count_writes(engine)

    report = sync(engine, integration)

    assert (report.courses_restricted, report.courses.updated, report.courses.unchanged) == (
        0, 1, 2
    )  # fmt: skip
    assert writes(engine) == {"lms_courses:UPDATE": 1}
    assert _row(engine, course)["access_restricted_since"] is None


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

    row = _row(engine, course.id)
    assert _unmarked(row) == _unmarked(stored)  # was: its id as title, no dates, no teacher
    assert row["access_restricted_since"] is not None
    assert (report.status, report.courses_restricted, report.courses.updated) == ("success", 1, 1)
    assert sync(engine, integration).courses.unchanged == 3
    assert _row(engine, course.id) == row


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
    assert back["deleted_at"] is None and back["access_restricted_since"] is not None
    assert {**_unmarked(back), "deleted_at": None} == {**_unmarked(stored), "deleted_at": None}
    # its roster and assignments went with the deletion; a restricted course cannot be read
    # to bring them back (no column keeps an enrollment's state from before the drop)
    assert _held(engine, course.id) == (0, 0)


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
    assert row["access_restricted_since"] is not None
    assert _row(engine, bare.id)["title"] == bare.id  # the id is all Canvas shows
    assert _held(engine, bare.id) == (0, 0)
    assert scalar(engine, "SELECT count(*) FROM lms_courses"
                          " WHERE access_restricted_since IS NOT NULL") == 2  # fmt: skip


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


def test_lms_status_counts_the_restricted_courses_and_names_the_first_ten(
    engine: Engine,
    integration: uuid.UUID,
    toolbox_env: dict[str, str],
    data: Dataset,
    canvas: FakeCanvas,
) -> None:
    for n in range(12):
        closed = data.add_course(f"Ended {n:02}")
        canvas.restrict_by_date(closed.id, shown=("name",) if n else ())
    assert sync(engine, integration).courses_restricted == 12
    with engine.connect() as connection:
        detail = integration_detail(connection, integration)
    assert detail.data["courses_restricted"] == 12
    assert len(detail.restricted_courses) == RESTRICTED_SHOWN == 10
    assert all(course.since is not None for course in detail.restricted_courses)
    open_ids = set(list(data.courses)[:3])
    assert not open_ids & {course.external_id for course in detail.restricted_courses}

    shown = toolbox("lms", "status", str(integration), env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    said = " ".join(shown.stdout.split())
    assert "courses restricted 12" in said
    assert "12 course(s) restricted (closed in the LMS for now" in said
    first = detail.restricted_courses[1]  # named: its title shows next to its id
    assert f"{first.external_id} {first.title}, since {first.since:%Y-%m-%d %H:%M} UTC" in said
    assert "and 2 more" in said
    as_json = json.loads(toolbox("lms", "status", str(integration), "--json",
                                 env=toolbox_env).stdout)  # fmt: skip
    assert as_json["data"]["courses_restricted"] == 12
    assert as_json["restricted_courses"][1] == {
        "external_id": first.external_id, "title": first.title, "since": first.since.isoformat()
    }  # fmt: skip
    assert len(as_json["restricted_courses"]) == 10

    canvas.restricted.clear()  # the term reopened: every course read in full again
    assert sync(engine, integration).courses_restricted == 0
    with engine.connect() as connection:
        reopened = integration_detail(connection, integration)
    assert (reopened.data["courses_restricted"], reopened.restricted_courses) == (0, [])


def _unmarked(row: dict[str, Any]) -> dict[str, Any]:
    """The row without its restricted mark and the ``updated_at`` that writing the mark moves."""
    return {**row, "access_restricted_since": None, "updated_at": None}


def _row(engine: Engine, external_course_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        return dict(connection.execute(text(COURSE), {"c": external_course_id}).one()._mapping)


def _held(engine: Engine, external_course_id: str) -> tuple[int, int]:
    """(live assignments, enrollments not dropped) stored for the course."""
    with engine.connect() as connection:
        row = connection.execute(text(HELD), {"c": external_course_id}).one()
    return int(row[0]), int(row[1])
