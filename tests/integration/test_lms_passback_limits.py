"""Grade passback drains stay inside their time, whatever an LMS does."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import Engine, text

from lms.base import ConnectionConfig, GradeOutcome, GradeSubmission, LMSClient
from lms.canvas import CanvasClient
from lms.drain import DrainReport, drain, send_worst_case_seconds
from lms.passback import PassbackPolicy
from lms.registry import make_client
from tests.integration.lms_support import (
    add_canvas,
    complete_attempt,
    link_quiz,
    passback_rows,
    students_of,
    sync,
)
from tests.lms.fakes import Dataset, FakeCanvas
from workers.secrets import secret_box

no_sleep = partial(make_client, sleep=lambda _: None)
QUICK = PassbackPolicy(http_timeout_seconds=0.5, http_retries=1)


def _data() -> Dataset:
    return Dataset.generate(courses=1, students_per_course=3, assignments_per_course=1)


@pytest.fixture
def dead() -> Iterator[FakeCanvas]:
    with FakeCanvas(_data()) as server:
        yield server


@pytest.fixture
def alive() -> Iterator[FakeCanvas]:
    with FakeCanvas(_data()) as server:
        yield server


def _connect(engine: Engine, *servers: FakeCanvas) -> list[uuid.UUID]:
    """Sync each fake, link its one assignment to a quiz, and finish an attempt per student."""
    integrations = [add_canvas(engine, server.base_url, server.token) for server in servers]
    for integration in integrations:
        assert sync(engine, integration).status == "success"
    data = servers[0].data
    course = next(iter(data.courses))
    quiz = link_quiz(engine, [data.course_assignments(course)[0].id])
    for user, _ in students_of(engine, course):
        complete_attempt(engine, quiz, user, 80)
    return integrations


def _rows_of(engine: Engine, integration: uuid.UUID) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(
            "SELECT p.* FROM lms_grade_passbacks p"
            " JOIN lms_assignments a ON a.id = p.lms_assignment_id"
            " JOIN lms_courses c ON c.id = a.lms_course_id WHERE c.lms_integration_id = :i"
        ), {"i": integration}))  # fmt: skip


def _timed_drain(engine: Engine, **kwargs: Any) -> tuple[DrainReport, float]:
    started = time.monotonic()
    report = drain(engine, secrets=secret_box, client_factory=no_sleep, **kwargs)
    return report, time.monotonic() - started


def test_a_dead_lms_costs_one_grade_per_drain_and_holds_back_no_other_lms(
    engine: Engine, dead: FakeCanvas, alive: FakeCanvas
) -> None:
    down, up = _connect(engine, dead, alive)
    dead.delay_response(30.0, times=1000, path="/api/v1/courses/")

    report, elapsed = _timed_drain(engine, policy=QUICK, time_budget=60)

    assert elapsed < 10, "well inside the budget: the dead LMS was tried once"
    sends = [request for request in dead.requests if "/submissions/" in request.path]
    assert len(sends) == 2, "one grade: a send and one retry"
    assert {row.status for row in _rows_of(engine, up)} == {"success"}
    assert len(alive.data.api_writes()) == 3
    tried, *skipped = sorted(_rows_of(engine, down), key=lambda row: -row.attempt_count)
    assert (tried.status, tried.attempt_count) == ("pending", 1)
    assert "ReadTimeout" in tried.error_message
    assert [(row.status, row.attempt_count) for row in skipped] == [("pending", 0)] * 2
    assert (report.sent, report.retrying, report.released) == (3, 1, 2)


def test_no_grade_starts_after_the_time_budget(engine: Engine, alive: FakeCanvas) -> None:
    (integration,) = _connect(engine, alive)
    alive.delay_response(0.4, times=1000, path="/api/v1/courses/")  # slow, but it answers
    policy = PassbackPolicy(http_timeout_seconds=5.0, http_retries=1)

    report, elapsed = _timed_drain(engine, policy=policy, time_budget=0.3)

    assert (report.sent, report.released) == (1, 2)
    assert elapsed < 0.3 + send_worst_case_seconds(policy)
    rows = sorted(_rows_of(engine, integration), key=lambda row: row.status)
    assert [(row.status, row.attempt_count) for row in rows] == [
        ("pending", 0), ("pending", 0), ("success", 1),
    ]  # fmt: skip


class _TimeLimitOnSecondGrade(CanvasClient):
    """Celery's soft time limit arrives while the second grade is being sent."""

    sent = 0

    def submit_grade(self, grade: GradeSubmission) -> GradeOutcome:
        self.sent += 1
        if self.sent == 2:
            raise SoftTimeLimitExceeded("Soft time limit (360.0s) exceeded")
        return super().submit_grade(grade)


def test_a_soft_time_limit_releases_the_unsent_grades_and_is_not_swallowed(
    engine: Engine, alive: FakeCanvas
) -> None:
    _connect(engine, alive)

    def factory(config: ConnectionConfig) -> LMSClient:
        return _TimeLimitOnSecondGrade(config, sleep=lambda _: None)

    with pytest.raises(SoftTimeLimitExceeded):
        drain(
            engine,
            secrets=secret_box,
            client_factory=factory,
            interrupts=(SoftTimeLimitExceeded,),
        )

    rows = sorted(passback_rows(engine), key=lambda row: row.status)
    assert [(row.status, row.attempt_count, row.error_message) for row in rows] == [
        ("pending", 0, None), ("pending", 0, None), ("success", 1, None),
    ]  # fmt: skip
