"""A listing cut short by an empty page fails its course instead of dropping its roster.

A OneRoster provider that caps ``limit`` at 50 answered one request of a class's
enrollments with ``{"enrollments": []}`` and ``X-Total-Count: 3001``: the sync took
it for the end of the list, reported ``success``, marked the 2,001 enrollments
after it dropped, and a grade for one of those students was never recorded.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from lms.links import link_assignment
from tests.integration.lms_support import (
    add_oneroster,
    complete_attempt,
    integration_row,
    new_quiz,
    passback_rows,
    scalar,
    students_of,
    sync,
)
from tests.lms.fakes import Dataset
from tests.lms.fakes.oneroster import ROSTERING, FakeOneRoster
from tests.lms.fakes.server import Fault, RecordedRequest, Reply

STUDENTS = 120
"""With the teacher, 121 enrollments: pages at offsets 0, 50 and 100 of the capped 50."""


@pytest.fixture
def data() -> Dataset:
    return Dataset.generate(courses=2, students_per_course=STUDENTS, assignments_per_course=1)


@pytest.fixture
def oneroster(data: Dataset) -> Iterator[FakeOneRoster]:
    with FakeOneRoster(data, page_size=50) as server:
        yield server


@pytest.fixture
def integration(engine: Engine, toolbox_env: dict[str, str], oneroster: FakeOneRoster) -> uuid.UUID:
    integration_id = add_oneroster(engine, oneroster)
    first = sync(engine, integration_id)
    assert (first.status, first.enrollments.inserted) == ("success", 2 * (STUDENTS + 1))
    return integration_id


def enrollments_page(course: str, offset: int) -> Fault:
    """One empty answer for ``course``'s enrollments at ``offset``, the total still 121."""

    def match(request: RecordedRequest) -> bool:
        return (
            request.path == f"{ROSTERING}/enrollments"
            and course in (request.arg("filter") or "")
            and request.arg("offset") == str(offset)
        )

    empty = Reply.json({"enrollments": []}, headers={"X-Total-Count": str(STUDENTS + 1)})
    return Fault(reply=empty, match=match)


def test_an_empty_page_below_the_total_fails_the_course_and_keeps_its_roster(
    engine: Engine, integration: uuid.UUID, oneroster: FakeOneRoster, data: Dataset
) -> None:
    course, other = list(data.courses)
    oneroster.inject(enrollments_page(course, 100))

    report = sync(engine, integration)

    assert (report.status, report.courses_failed, report.enrollments.removed) == ("partial", 1, 0)
    (error,) = report.errors
    assert error.startswith(f"course {course}: GET {oneroster.base_url}{ROSTERING}/enrollments?")
    assert error.endswith(
        ": the page at offset 100 is empty, but X-Total-Count says 121 records; not taken for"
        " the end of the listing"
    )
    row = integration_row(engine, integration)
    assert row.last_sync_status == "partial" and error in row.sync_error_message
    dropped = "SELECT count(*) FROM lms_enrollments WHERE enrollment_state = 'dropped'"
    assert scalar(engine, dropped) == 0
    assert len(students_of(engine, course)) == len(students_of(engine, other)) == STUDENTS

    # The last student of the class, past the empty page, still gets a grade recorded.
    quiz = link_first_assignment(engine, integration, data, course)
    student, _ = students_of(engine, course)[-1]
    _, written = complete_attempt(engine, quiz, student, Decimal(90))
    assert len(written) == 1 and len(passback_rows(engine)) == 1

    again = sync(engine, integration)  # the provider answers in full again
    assert (again.status, again.enrollments.removed) == ("success", 0)


def test_an_empty_first_page_with_a_total_fails_the_course(
    engine: Engine, integration: uuid.UUID, oneroster: FakeOneRoster, data: Dataset
) -> None:
    course = next(iter(data.courses))
    oneroster.inject(enrollments_page(course, 0))

    report = sync(engine, integration)

    assert (report.status, report.courses_failed, report.enrollments.removed) == ("partial", 1, 0)
    assert "the page at offset 0 is empty, but X-Total-Count says 121 records" in report.errors[0]
    assert len(students_of(engine, course)) == STUDENTS


def test_a_class_whose_roster_really_emptied_is_dropped(
    engine: Engine, integration: uuid.UUID, oneroster: FakeOneRoster, data: Dataset
) -> None:
    """An empty first page with ``X-Total-Count: 0`` is an empty class, not a hiccup."""
    course = next(iter(data.courses))
    data.course_enrollments(course).clear()  # the class's index: what the fake lists

    report = sync(engine, integration)

    assert (report.status, report.enrollments.removed) == ("success", STUDENTS + 1)
    live = "SELECT count(*) FROM lms_enrollments WHERE enrollment_state <> 'dropped'"
    assert scalar(engine, live) == STUDENTS + 1  # the other class's


def link_first_assignment(
    engine: Engine, integration: uuid.UUID, data: Dataset, course: str
) -> uuid.UUID:
    """A new quiz linked to the course's first assignment, as a service links it."""
    quiz = new_quiz(engine)
    with engine.begin() as connection:
        link_assignment(connection, integration, data.course_assignments(course)[0].id, quiz)
    return quiz
