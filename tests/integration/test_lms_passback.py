"""Grade passback: rows written with the attempt, sent once, whatever the faults."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from lms.drain import drain
from lms.passback import record_attempt_completion, sourced_id
from lms.registry import make_client
from models.errors import NotFound, ValidationFailed
from models.quizzes import QuizAttempt
from tests.integration.lms_support import (
    add_canvas,
    complete_attempt,
    link_quiz,
    make_all_due,
    passback_rows,
    students_of,
    sync,
)
from tests.lms.fakes import Dataset, FakeCanvas
from tests.workers import StartWorker, wait_for
from workers import migrate
from workers.app import app
from workers.secrets import secret_box

no_sleep = partial(make_client, sleep=lambda _: None)


@pytest.fixture
def quiz(
    engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas, assignment: str
) -> uuid.UUID:
    """A quiz linked to the first assignment of the first course, after a first sync."""
    integration = add_canvas(engine, canvas.base_url, canvas.token)
    assert sync(engine, integration).status == "success"
    return link_quiz(engine, [assignment])


def run_drain(engine: Engine, **kwargs: Any) -> Any:
    return drain(engine, secrets=secret_box, client_factory=no_sleep, **kwargs)


def test_completion_writes_a_fixed_payload_in_the_callers_transaction(
    engine: Engine, quiz: uuid.UUID, course: str, data: Dataset, assignment: str
) -> None:
    (student, lms_id), *_ = students_of(engine, course)
    with Session(engine) as session:
        attempt = session.execute(
            text("INSERT INTO quiz_attempts (quiz_id, user_id, attempt_number, completed_at, score)"
                 " VALUES (:q, :u, 1, now(), 80) RETURNING id"), {"q": quiz, "u": student},
        ).scalar_one()  # fmt: skip
        assert len(record_attempt_completion(session, attempt)) == 1
        session.rollback()
    assert passback_rows(engine) == [], "a rolled-back attempt leaves no passback"

    attempt, written = complete_attempt(engine, quiz, student, Decimal("87.5"))
    (row,) = passback_rows(engine)
    points = data.assignments[assignment].points_possible
    assert written == [row.id]
    assert (row.status, row.attempt_count, row.external_user_id) == ("pending", 0, lms_id)
    assert row.percentage == Decimal("87.50") and row.points_possible == points
    assert row.score == (Decimal("87.5") * points / 100).quantize(Decimal("0.01"))
    completed = _scalar(engine, "SELECT completed_at FROM quiz_attempts WHERE id = :a", a=attempt)
    assert row.score_timestamp == completed
    assert row.sourced_id == sourced_id(attempt, row.lms_assignment_id)
    with Session(engine) as session, session.begin():
        assert record_attempt_completion(session, attempt) == [], "a second call adds nothing"
        with pytest.raises(NotFound):
            record_attempt_completion(session, uuid.uuid4())


def test_an_attempt_id_that_is_no_uuid_is_refused_and_the_transaction_goes_on(
    engine: Engine,
) -> None:
    """The caller completes the attempt in this transaction: a bad id must not abort it."""
    with Session(engine) as session, session.begin():
        with pytest.raises(ValidationFailed, match=r"^attempt_id: not a quiz attempt id"):
            record_attempt_completion(session, "not-a-uuid")  # type: ignore[arg-type]
        assert session.execute(text("SELECT 1")).scalar_one() == 1


def test_an_unflushed_attempt_or_an_engine_is_refused_saying_what_to_pass(
    engine: Engine, quiz: uuid.UUID, course: str
) -> None:
    """A service completing an attempt with the ORM passed ``attempt.id`` before a flush
    (None: the id is the database's default) and was told ``not a quiz attempt id (a
    UUID)``; an Engine instead of its session failed with ``AttributeError: 'Engine'
    object has no attribute 'execute'``."""
    (student, _), *_ = students_of(engine, course)
    with Session(engine) as session, session.begin():
        attempt = QuizAttempt(
            quiz_id=quiz, user_id=student, attempt_number=1, completed_at=dt.datetime.now(dt.UTC),
            score=Decimal(80),
        )  # fmt: skip
        session.add(attempt)
        with pytest.raises(ValidationFailed, match=r"^attempt_id: None; .*session\.flush\(\)"):
            record_attempt_completion(session, attempt.id)
        session.flush()
        attempt_id = attempt.id
        assert len(record_attempt_completion(session, attempt_id)) == 1
    with pytest.raises(ValidationFailed, match=r"^db: not a Session or Connection \(an Engine\)"):
        record_attempt_completion(engine, attempt_id)  # type: ignore[arg-type]
    assert len(passback_rows(engine)) == 1


def test_only_enrolled_students_with_a_finished_attempt_get_a_passback(
    engine: Engine, quiz: uuid.UUID, course: str, data: Dataset
) -> None:
    other_course = list(data.courses)[1]
    (outsider, _), *_ = students_of(engine, other_course)
    assert complete_attempt(engine, quiz, outsider, 90)[1] == []
    teacher = _scalar(
        engine,
        "SELECT e.user_id FROM lms_enrollments e JOIN lms_courses c ON c.id = e.lms_course_id"
        " WHERE c.external_course_id = :c AND e.role = 'teacher'",
        c=course,
    )
    assert complete_attempt(engine, quiz, teacher, 90)[1] == []
    (student, _), *_ = students_of(engine, course)
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE lms_enrollments SET enrollment_state = 'dropped' WHERE user_id = :u"),
            {"u": student},
        )
    assert complete_attempt(engine, quiz, student, 90)[1] == []
    with Session(engine) as session, session.begin():
        unfinished = session.execute(
            text("INSERT INTO quiz_attempts (quiz_id, user_id, attempt_number)"
                 " VALUES (:q, :u, 2) RETURNING id"), {"q": quiz, "u": student},
        ).scalar_one()  # fmt: skip
        with pytest.raises(ValidationFailed, match="not completed"):
            record_attempt_completion(session, unfinished)


def test_each_grade_lands_once_and_a_resend_after_a_lost_lease_is_recognised(
    engine: Engine, quiz: uuid.UUID, course: str, data: Dataset, assignment: str
) -> None:
    students = students_of(engine, course)
    for user, _ in students:
        complete_attempt(engine, quiz, user, 70)

    report = run_drain(engine)

    assert (report.sent, report.already_applied, report.retrying) == (3, 0, 0)
    assert {row.status for row in passback_rows(engine)} == {"success"}
    for _, lms_id in students:
        (write,) = data.api_writes(assignment, lms_id)
        assert write.score == Decimal(70) * data.assignments[assignment].points_possible / 100
    # A worker died after the LMS took the grade but before the row said so:
    with engine.begin() as connection:
        connection.execute(text("UPDATE lms_grade_passbacks SET status = 'sending'"))
    make_all_due(engine, leases=True)

    again = run_drain(engine)

    assert (again.recovered, again.sent, again.already_applied) == (3, 3, 3)
    assert len(data.api_writes()) == 3, "the LMS saw each grade once"
    assert {row.attempt_count for row in passback_rows(engine)} == {2}


def test_outages_back_off_permanent_refusals_fail_and_both_say_why(
    engine: Engine, quiz: uuid.UUID, course: str, data: Dataset, canvas: FakeCanvas
) -> None:
    (flaky, flaky_lms), (refused, refused_lms), _ = students_of(engine, course)
    complete_attempt(engine, quiz, flaky, 60)
    complete_attempt(engine, quiz, refused, 60)
    canvas.server_errors(times=50, status=503, path=f"/api/v1/courses/{course}/assignments/",
                         method="PUT")  # fmt: skip
    canvas.server_errors(times=1, status=429, path=f"/api/v1/courses/{course}/assignments/")
    enrollment = data.enrollment_of(course, refused_lms)
    assert enrollment is not None
    enrollment.state = "deleted"  # Canvas now answers 404 for this student

    before = dt.datetime.now(dt.UTC)
    report = run_drain(engine)
    # The LMS failed with 5xx through every retry: this drain tries it no more.
    assert (report.retrying, report.failed, report.released) == (1, 0, 1)
    later = run_drain(engine)  # the next drain
    assert (later.sent, later.retrying, later.failed) == (0, 0, 1)

    rows = {row.external_user_id: row for row in passback_rows(engine)}
    waiting, failed = rows[flaky_lms], rows[refused_lms]
    assert (waiting.status, waiting.attempt_count) == ("pending", 1)
    assert "HTTP 503" in waiting.error_message
    assert before + dt.timedelta(seconds=14) < waiting.next_attempt_at
    assert waiting.next_attempt_at < before + dt.timedelta(seconds=40)
    assert failed.status == "failed" and failed.next_attempt_at is None
    assert "HTTP 404" in failed.error_message and "does not exist" in failed.error_message
    assert failed.attempt_count == 1, "the skipped attempt was not counted"
    assert run_drain(engine).sent == 0, "nothing is due before the backoff ends"

    canvas.faults.clear()
    make_all_due(engine)
    assert run_drain(engine).sent == 1
    assert (
        len(data.api_writes(user_id=flaky_lms)) == 1 and data.api_writes(user_id=refused_lms) == []
    )


def test_a_long_retry_after_holds_back_every_grade_of_that_lms_until_then(
    engine: Engine, quiz: uuid.UUID, course: str, canvas: FakeCanvas
) -> None:
    for user, _ in students_of(engine, course):
        complete_attempt(engine, quiz, user, 80)
    grades = f"/api/v1/courses/{course}/assignments/"
    canvas.throttle(times=1, retry_after="3600", path=grades)

    report = run_drain(engine)

    assert (report.retrying, report.released, report.sent) == (1, 2, 0)
    assert len(canvas.requests_to(grades)) == 1, "the other grades were not sent"
    assert _scalar(engine, "SELECT not_before > now() + interval '59 minutes'"
                           " FROM lms_integrations") is True  # fmt: skip
    make_all_due(engine)  # each grade's own backoff (at most 15 minutes) is over
    assert run_drain(engine).sent == 0, "not before the time the LMS named"

    with engine.begin() as connection:  # the hour is over
        connection.execute(text("UPDATE lms_integrations SET not_before = now() - interval '1s'"))
    assert run_drain(engine).sent == 3


def test_only_the_newest_pending_grade_is_sent_and_a_newer_lms_grade_is_kept(
    engine: Engine, quiz: uuid.UUID, course: str, data: Dataset, assignment: str
) -> None:
    (first, first_lms), (second, second_lms), _ = students_of(engine, course)
    an_hour_ago = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    complete_attempt(engine, quiz, first, 40, completed_at=an_hour_ago, attempt_number=1)
    complete_attempt(engine, quiz, first, 95, attempt_number=2)
    complete_attempt(engine, quiz, second, 30, completed_at=an_hour_ago)
    data.set_grade(assignment, second_lms, 88)  # a teacher graded by hand since then

    report = run_drain(engine)

    assert (report.superseded, report.sent, report.already_applied) == (1, 2, 1)
    points = data.assignments[assignment].points_possible
    assert [w.score for w in data.api_writes(assignment, first_lms)] == [Decimal(95) * points / 100]
    assert data.api_writes(assignment, second_lms) == []
    assert data.grade(assignment, second_lms).score == 88  # type: ignore[union-attr]
    older = next(row for row in passback_rows(engine) if row.percentage == 40)
    assert older.status == "success" and older.response_data["outcome"] == "superseded"
    assert older.attempt_count == 0


def _regrade(engine: Engine, attempt: uuid.UUID, score: int) -> list[uuid.UUID]:
    """A service changes the attempt's score and records it, in one transaction."""
    with Session(engine) as session, session.begin():
        session.execute(
            text("UPDATE quiz_attempts SET score = :s WHERE id = :a"), {"s": score, "a": attempt}
        )
        written = record_attempt_completion(session, attempt)
        assert record_attempt_completion(session, attempt) == [], "a repeat adds nothing"
        return written


def test_a_regraded_attempt_sends_its_new_grade_after_the_first(
    engine: Engine, quiz: uuid.UUID, course: str, data: Dataset, assignment: str
) -> None:
    (student, lms_id), *_ = students_of(engine, course)
    attempt, _ = complete_attempt(engine, quiz, student, 60)
    assert run_drain(engine).sent == 1
    assert _regrade(engine, attempt, 60) == [], "the same score is no regrade"

    (regraded,) = _regrade(engine, attempt, 85)
    report = run_drain(engine)

    assert (report.sent, report.already_applied, report.superseded) == (1, 0, 0)
    points = data.assignments[assignment].points_possible
    writes = [w.score for w in data.api_writes(assignment, lms_id)]
    assert writes == [Decimal(60) * points / 100, Decimal(85) * points / 100]
    first, second = passback_rows(engine)
    assert second.id == regraded and second.status == first.status == "success"
    assert second.score_timestamp > first.score_timestamp
    assert second.sourced_id == first.sourced_id == sourced_id(attempt, first.lms_assignment_id)

    (back,) = _regrade(engine, attempt, 60)  # back to the first score: a grade again
    assert run_drain(engine).sent == 1
    assert data.grade(assignment, lms_id).score == Decimal(60) * points / 100  # type: ignore[union-attr]
    assert [row.id for row in passback_rows(engine)][-1] == back


def test_a_downgrade_below_regrades_stops_rather_than_delete_grades(
    engine: Engine, database_url: str, quiz: uuid.UUID, course: str
) -> None:
    (student, _), *_ = students_of(engine, course)
    attempt, _ = complete_attempt(engine, quiz, student, 50)
    _regrade(engine, attempt, 65)
    engine.dispose()
    with pytest.raises(
        RuntimeError, match=r"cannot downgrade below 0007: 1 \(attempt, assignment\)"
    ):
        migrate.downgrade(database_url, "0006")
    assert migrate.current_revision(database_url) == migrate.head_revision()
    assert len(passback_rows(engine)) == 2


def test_a_regrade_before_the_first_grade_went_out_sends_only_the_new_one(
    engine: Engine, quiz: uuid.UUID, course: str, data: Dataset, assignment: str
) -> None:
    (student, lms_id), *_ = students_of(engine, course)
    attempt, _ = complete_attempt(engine, quiz, student, 40)
    _regrade(engine, attempt, 70)

    report = run_drain(engine)

    assert (report.superseded, report.sent) == (1, 1)
    points = data.assignments[assignment].points_possible
    assert [w.score for w in data.api_writes(assignment, lms_id)] == [Decimal(70) * points / 100]
    older = next(row for row in passback_rows(engine) if row.percentage == 40)
    assert older.response_data["outcome"] == "superseded" and older.attempt_count == 0


@pytest.mark.worker
def test_grades_not_sent_by_the_drain_task_are_counted_in_the_error_log(
    engine: Engine, start_worker: StartWorker, quiz: uuid.UUID, course: str, data: Dataset,
    canvas: FakeCanvas,
) -> None:  # fmt: skip
    (flaky, _), *refused = students_of(engine, course)
    for user, lms_id in refused:
        complete_attempt(engine, quiz, user, 70)
        enrollment = data.enrollment_of(course, lms_id)
        assert enrollment is not None
        enrollment.state = "deleted"  # Canvas now answers 404 for these students
    complete_attempt(engine, quiz, flaky, 60)  # sent last: after it the drain leaves the LMS be
    # longer than the client waits in-process: the grade goes back to pending at once
    canvas.throttle(times=1, retry_after="3600", path=f"/api/v1/courses/{course}/assignments/",
                    method="PUT")  # fmt: skip
    start_worker(queues="passback", concurrency=1)
    app.send_task("toolbox.lms.drain_passbacks")
    wait_for(lambda: sum(row.occurrence_count for row in _errors(engine)) == 3, 30)

    low, high = _errors(engine)  # one row per distinct error, counted
    assert (low.severity, low.error_code, low.occurrence_count) == ("low", "retryable", 1)
    assert "429" in low.error_message
    assert (high.severity, high.error_code, high.occurrence_count) == ("high", "permanent", 2)
    assert "HTTP 404" in high.error_message
    assert high.request_data["status"] == "failed"
    assert {row.status for row in passback_rows(engine)} == {"pending", "failed"}


def _errors(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(connection.execute(text(
            "SELECT * FROM error_logs WHERE service_name = 'toolbox.lms.passback'"
            " ORDER BY array_position(ARRAY['low', 'medium', 'high', 'critical'], severity)"
        )))  # fmt: skip


@pytest.mark.worker
def test_a_worker_killed_mid_passback_leaves_a_row_that_is_resent_once(
    engine: Engine, start_worker: StartWorker, quiz: uuid.UUID, course: str, data: Dataset,
    canvas: FakeCanvas, assignment: str,
) -> None:  # fmt: skip
    (student, lms_id), *_ = students_of(engine, course)
    complete_attempt(engine, quiz, student, 75)
    canvas.delay_response(20.0, path=f"/api/v1/courses/{course}/assignments/", method="PUT")
    worker = start_worker(queues="passback", concurrency=1)
    app.send_task("toolbox.lms.drain_passbacks")
    wait_for(lambda: len(data.api_writes(assignment, lms_id)) == 1, timeout=30)
    worker.kill()  # the LMS applied the grade; the worker never heard back
    (row,) = passback_rows(engine)
    assert (row.status, row.attempt_count) == ("sending", 1)

    make_all_due(engine, leases=True)  # the lease ends
    start_worker(queues="passback", concurrency=1)
    app.send_task("toolbox.lms.drain_passbacks")
    wait_for(lambda: passback_rows(engine)[0].status == "success", timeout=30)

    (row,) = passback_rows(engine)
    assert row.attempt_count == 2 and row.response_data["outcome"] == "already_applied"
    assert len(data.api_writes(assignment, lms_id)) == 1, "applied once"


@pytest.mark.worker
def test_two_beats_in_a_429_and_5xx_storm_apply_every_grade_exactly_once(
    engine: Engine, start_worker: StartWorker, quiz: uuid.UUID, course: str, data: Dataset,
    canvas: FakeCanvas, assignment: str,
) -> None:  # fmt: skip
    other = list(data.courses)[1]
    for course_id in (course, other):  # 3 more students, in the second course
        for _ in range(6 if course_id == course else 3):
            data.enroll(course_id, data.add_user().id)
    extra = data.course_assignments(other)[0].id
    integration = _scalar(engine, "SELECT id FROM lms_integrations")
    assert sync(engine, integration).status == "success"
    both = link_quiz(engine, [assignment, extra])
    for user, _ in students_of(engine, course) + students_of(engine, other):
        complete_attempt(engine, both, user, 64)
    expected = len(passback_rows(engine))
    assert expected == 15
    canvas.throttle(times=8, retry_after="0", path="/api/v1/courses/")
    canvas.server_errors(times=8, status=502, path="/api/v1/courses/", method="PUT")
    start_worker(queues="passback", concurrency=2)
    start_worker(queues="passback", concurrency=2)

    def settled() -> bool:
        if all(row.status == "success" for row in passback_rows(engine)):
            return True
        make_all_due(engine)
        for _ in range(2):  # two beats fire the same drain at the same moment
            app.send_task("toolbox.lms.drain_passbacks")
        return False

    wait_for(settled, timeout=60, interval=1.0)

    writes = data.api_writes()
    assert len(writes) == expected, "every grade applied, none twice"
    assert len({(w.assignment_id, w.user_id) for w in writes}) == expected
    assert max(row.attempt_count for row in passback_rows(engine)) > 1, "the storm was felt"


def _scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()
