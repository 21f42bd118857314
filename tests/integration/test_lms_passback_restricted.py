"""Grades for a course Canvas keeps closed (restricted by date): held, not sent into a 401."""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Engine, text

from lms.status import integration_detail
from tests.integration.lms_support import (
    complete_attempt,
    make_all_due,
    passback_rows,
    scalar,
    students_of,
    sync,
)
from tests.integration.test_lms_cli import toolbox
from tests.integration.test_lms_passback import (  # noqa: F401
    quiz,
    run_drain,
)
from tests.lms.fakes import FakeCanvas


def test_grades_of_a_restricted_course_wait_unsent_and_go_out_once_it_is_open(
    engine: Engine, toolbox_env: dict[str, str], quiz: uuid.UUID, course: str,  # noqa: F811
    canvas: FakeCanvas,
) -> None:  # fmt: skip
    integration = _integration(engine)
    for user, _ in students_of(engine, course):
        complete_attempt(engine, quiz, user, 80)
    canvas.restrict_by_date(course)
    assert sync(engine, integration).courses_restricted == 1
    grades = f"/api/v1/courses/{course}/assignments/"

    held = run_drain(engine)

    assert (held.sent, held.retrying, held.failed, held.released) == (0, 0, 0, 0)
    assert canvas.requests_to(grades) == [], "Canvas is not asked: it would answer 401"
    rows = passback_rows(engine)
    assert [(row.status, row.attempt_count) for row in rows] == [("pending", 0)] * 3
    with engine.connect() as connection:
        summary = integration_detail(connection, integration).summary
    assert (summary.passbacks["pending"], summary.passbacks_held) == (3, 3)
    shown = toolbox("lms", "status", str(integration), env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    assert "3 pending (3 held: course closed in the LMS)" in " ".join(shown.stdout.split())
    listed = toolbox("lms", "list", env=toolbox_env)
    assert "3 owed (3 held)" in listed.stdout
    as_json = json.loads(toolbox("lms", "status", str(integration), "--json",
                                 env=toolbox_env).stdout)  # fmt: skip
    assert as_json["passbacks_held"] == 3

    del canvas.restricted[course]  # the course reopens: the next sync sees it
    assert sync(engine, integration).courses_restricted == 0
    sent = run_drain(engine)

    assert sent.sent == 3
    assert [(row.status, row.attempt_count) for row in passback_rows(engine)] == [
        ("success", 1)
    ] * 3  # fmt: skip
    with engine.connect() as connection:
        assert integration_detail(connection, integration).summary.passbacks_held == 0


def test_a_401_for_a_course_not_known_restricted_backs_off_then_waits_once_a_sync_knows(
    engine: Engine,
    quiz: uuid.UUID,  # noqa: F811
    course: str,
    canvas: FakeCanvas,
) -> None:
    integration = _integration(engine)
    (student, _), *_ = students_of(engine, course)
    complete_attempt(engine, quiz, student, 70)
    canvas.restrict_by_date(course)  # no sync has seen it yet
    grades = f"/api/v1/courses/{course}/assignments/"

    first = run_drain(engine)

    assert (first.retrying, first.failed) == (1, 0)
    (row,) = passback_rows(engine)
    assert (row.status, row.attempt_count) == ("pending", 1) and "401" in row.error_message
    asked = len(canvas.requests_to(grades))
    assert asked > 0

    assert sync(engine, integration).courses_restricted == 1
    make_all_due(engine)
    held = run_drain(engine)

    assert (held.sent, held.retrying, held.failed) == (0, 0, 0)
    assert len(canvas.requests_to(grades)) == asked, "not asked again while it is closed"
    (row,) = passback_rows(engine)
    assert (row.status, row.attempt_count) == ("pending", 1)


def test_a_grade_held_past_give_up_after_fails_naming_the_closed_course(
    engine: Engine,
    quiz: uuid.UUID,  # noqa: F811
    course: str,
    canvas: FakeCanvas,
) -> None:
    integration = _integration(engine)
    (old, old_lms), (recent, _), _ = students_of(engine, course)
    _, (stale,) = complete_attempt(engine, quiz, old, 60)
    complete_attempt(engine, quiz, recent, 90)
    canvas.restrict_by_date(course)
    assert sync(engine, integration).courses_restricted == 1
    with engine.begin() as connection:  # held for 8 days: longer than give_up_after (7)
        connection.execute(
            text("UPDATE lms_grade_passbacks SET created_at = now() - interval '8 days'"
                 " WHERE id = :id"), {"id": stale},
        )  # fmt: skip
    title = scalar(engine, "SELECT title FROM lms_courses WHERE external_course_id = :c", c=course)

    report = run_drain(engine)

    assert (report.failed, report.sent, report.retrying) == (1, 0, 0)
    assert canvas.requests_to(f"/api/v1/courses/{course}/assignments/") == []
    rows = {row.id: row for row in passback_rows(engine)}
    failed = rows.pop(stale)
    assert (failed.status, failed.attempt_count, failed.next_attempt_at) == ("failed", 0, None)
    assert failed.error_message.startswith(
        f"gave up after 7 day(s): course {course} ({title!r}) is closed in Canvas"
        " (restricted by date) since "
    )
    (problem,) = report.problems
    assert (problem.passback_id, problem.status, problem.error) == (
        stale, "failed", failed.error_message
    )  # fmt: skip
    assert [(row.status, row.attempt_count) for row in rows.values()] == [("pending", 0)]
    assert run_drain(engine).failed == 0, "failed once"
    assert old_lms not in {write.user_id for write in canvas.data.api_writes()}


def _integration(engine: Engine) -> Any:
    return scalar(engine, "SELECT id FROM lms_integrations")
