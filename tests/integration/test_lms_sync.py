"""LMS sync against a fake Canvas over real HTTP and a real PostgreSQL (run in-process)."""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from celery.exceptions import Retry
from sqlalchemy import Engine, text

import lms.sync
from lms.people import UNUSABLE_PASSWORD, placeholder_username
from lms.registry import make_client
from lms.schedule import SYNC_LOCK_NAMESPACE, claim_due, claim_now, set_not_before, sync_lock
from lms.status import list_integrations
from models.errors import LMSUnavailable
from tests.integration.lms_support import (
    add_canvas,
    claimed_ids,
    count_writes,
    integration_row,
    scalar,
    sync,
    writes,
)
from tests.integration.ops_support import terminate_sessions
from tests.lms.fakes import Dataset, FakeCanvas
from tests.lms.fakes.server import Fault, Reply
from workers.db import get_engine
from workers.logs import configure_logging

no_sleep = partial(make_client, sleep=lambda _: None)


@pytest.fixture
def data() -> Dataset:
    return Dataset.generate(courses=3, students_per_course=4, assignments_per_course=2)


@pytest.fixture
def canvas(data: Dataset) -> Iterator[FakeCanvas]:
    with FakeCanvas(data) as server:
        yield server


def test_first_sync_writes_everything_and_an_unchanged_resync_writes_no_row(
    engine: Engine, integration: uuid.UUID
) -> None:
    count_writes(engine)
    first = sync(engine, integration)
    assert first.status == "success", first.message
    assert (first.courses.inserted, first.assignments.inserted, first.enrollments.inserted) == (
        3, 6, 15,
    )  # fmt: skip
    assert writes(engine) == {
        "lms_courses:INSERT": 3, "lms_assignments:INSERT": 6, "lms_enrollments:INSERT": 15,
        "users:INSERT": 15, "lms_user_links:INSERT": 15,
    }  # fmt: skip
    row = integration_row(engine, integration)
    assert (row.last_sync_status, row.sync_error_message) == ("success", None)
    assert row.last_sync_at is not None
    roles = scalar(engine, "SELECT array_agg(DISTINCT role ORDER BY role) FROM users")
    assert roles == ["student", "teacher"]
    assert scalar(engine, "SELECT count(*) FROM users WHERE password_hash <> :p",
                  p=UNUSABLE_PASSWORD) == 0  # fmt: skip
    assert scalar(engine, "SELECT max(enrollment_count) FROM lms_courses") == 5

    again = sync(engine, integration)
    assert again.status == "success"
    assert (again.courses.unchanged, again.assignments.unchanged, again.enrollments.unchanged) == (
        3, 6, 15,
    )  # fmt: skip
    assert writes(engine) == {}, "an unchanged re-sync must not write a single row"


def test_changes_are_written_and_disappearances_marked_then_unmarked(
    engine: Engine, integration: uuid.UUID, data: Dataset
) -> None:
    assert sync(engine, integration).status == "success"
    course_a, _, course_c = list(data.courses.values())
    student, gone_student = [
        e for e in data.course_enrollments(course_a.id) if e.role == "student"
    ][:2]
    kept_assignment, gone_assignment = data.course_assignments(course_a.id)
    course_a.title = "Renamed course"
    kept_assignment.points_possible = Decimal("12.5")
    student.state = "deleted"  # Canvas lists it as deleted: a drop
    data.course_enrollments(course_a.id).remove(gone_student)  # not listed at all any more
    data.course_assignments(course_a.id).remove(gone_assignment)
    del data.courses[course_c.id]
    count_writes(engine)

    report = sync(engine, integration)

    assert report.status == "success"
    assert (report.assignments.updated, report.assignments.removed) == (1, 1)
    assert (report.enrollments.updated, report.enrollments.removed) == (1, 1)
    assert report.courses_removed == 1
    # the removed course takes its 2 assignments and 5 enrollments along (marked, dropped)
    assert writes(engine) == {"lms_courses:UPDATE": 2, "lms_assignments:UPDATE": 4,
                              "lms_enrollments:UPDATE": 7}  # fmt: skip
    assert scalar(engine, "SELECT title FROM lms_courses WHERE external_course_id = :c",
                  c=course_a.id) == "Renamed course"  # fmt: skip
    points = "SELECT points_possible FROM lms_assignments WHERE external_assignment_id = :a"
    assert scalar(engine, points, a=kept_assignment.id) == Decimal("12.50")
    dropped = {
        row.external_user_id: row
        for row in _enrollments(engine, course_a.id)
        if row.enrollment_state == "dropped"
    }
    assert set(dropped) == {student.user_id, gone_student.user_id}
    assert all(row.dropped_at is not None for row in dropped.values())
    assert _deleted(engine, "lms_assignments", "external_assignment_id", gone_assignment.id)
    assert _deleted(engine, "lms_courses", "external_course_id", course_c.id)
    assert scalar(engine, "SELECT enrollment_count FROM lms_courses WHERE external_course_id = :c",
                  c=course_a.id) == 3  # fmt: skip

    student.state = "active"
    data.course_enrollments(course_a.id).append(gone_student)
    data.course_assignments(course_a.id).append(gone_assignment)
    data.courses[course_c.id] = course_c
    back = sync(engine, integration)

    assert back.status == "success"
    assert all(r.enrollment_state == "active" and r.dropped_at is None
               for r in _enrollments(engine, course_a.id))  # fmt: skip
    assert not _deleted(engine, "lms_assignments", "external_assignment_id", gone_assignment.id)
    assert not _deleted(engine, "lms_courses", "external_course_id", course_c.id)
    assert writes(engine).get("lms_courses:UPDATE") == 2  # course A (count) and course C (back)


def test_a_malformed_page_writes_nothing_for_its_course_and_the_others_land(
    engine: Engine, integration: uuid.UUID, data: Dataset, canvas: FakeCanvas
) -> None:
    bad = list(data.courses)[1]
    canvas.malformed_json(path=f"/api/v1/courses/{bad}/assignments")

    report = sync(engine, integration)

    assert report.status == "partial"
    assert (report.courses_listed, report.courses_failed) == (3, 1)
    row = integration_row(engine, integration)
    assert row.last_sync_status == "partial"
    assert row.sync_error_message.startswith(f"1 of 3 course(s) failed: course {bad}: GET ")
    assert "not JSON" in row.sync_error_message
    assert scalar(engine, "SELECT count(*) FROM lms_courses WHERE external_course_id = :c",
                  c=bad) == 0  # fmt: skip
    assert scalar(engine, "SELECT count(*) FROM lms_courses") == 2
    assert scalar(engine, "SELECT count(*) FROM lms_enrollments") == 10

    healed = sync(engine, integration)
    assert healed.status == "success" and healed.courses.inserted == 1


def test_an_outage_of_the_course_list_fails_the_run_or_keeps_the_claim_for_a_retry(
    engine: Engine, integration: uuid.UUID, canvas: FakeCanvas
) -> None:
    canvas.inject(Fault(100, Reply.text("upstream down", 503),
                        match=lambda request: request.path == "/api/v1/courses"))  # fmt: skip

    with pytest.raises(LMSUnavailable):
        sync(engine, integration, client_factory=no_sleep, final_attempt=False)
    waiting = integration_row(engine, integration)
    assert waiting.last_sync_status == "running"
    assert waiting.sync_error_message.startswith("retrying: GET http://127.0.0.1:")

    failed = sync(engine, integration, client_factory=no_sleep)
    assert failed.status == "failed"
    row = integration_row(engine, integration)
    assert row.last_sync_status == "failed" and "503" in row.sync_error_message
    assert scalar(engine, "SELECT count(*) FROM lms_courses") == 0


def _run_sync_task(integration: uuid.UUID, retries: int = 0, **kwargs: Any) -> Any:
    """The sync task's body as a worker runs it (a delivered message), without a worker.

    Imported here, not at the top: pytest inspects a test module's globals while
    collecting, and touching a Celery task evaluates the app's configuration,
    which (no server URLs set yet) would start embedded servers.
    """
    from tasks.lms import sync_integration
    from workers.db import get_engine

    if "run_id" not in kwargs:  # as the claim queued it: the row's run id
        run_id = integration_row(get_engine(), integration).sync_run_id
        kwargs["run_id"] = str(run_id) if run_id else None
    sync_integration.push_request(
        id=str(uuid.uuid4()), retries=retries, called_directly=False, delivery_info={},
        args=[str(integration)], kwargs=kwargs,
    )  # fmt: skip
    try:
        return sync_integration.run(str(integration), **kwargs)
    finally:
        sync_integration.pop_request()


def test_the_first_retry_after_an_outage_is_jittered_not_the_http_clients_backoff_hint(
    engine: Engine, integration: uuid.UUID, canvas: FakeCanvas
) -> None:
    """Every integration an outage hit would otherwise come back at exactly +30 s at once."""
    canvas.inject(Fault(100, Reply.text("upstream down", 503),
                        match=lambda request: request.path == "/api/v1/courses"))  # fmt: skip
    with engine.begin() as connection:
        assert claim_now(connection, integration).claimed

    with pytest.raises(Retry) as retried:
        _run_sync_task(integration)

    assert isinstance(retried.value.when, float)
    assert 15 <= retried.value.when < 30, "a jittered 30 s step: 15 to 30 s"
    assert retried.value.sig is not None
    run_id = str(integration_row(engine, integration).sync_run_id)
    assert retried.value.sig.kwargs == {
        "throttled": 0, "ignore_not_before": False, "run_id": run_id,
    }, "a retry keeps its claim's run id"  # fmt: skip


def test_a_sync_retry_waits_as_long_as_the_lms_asks_and_a_longer_wish_is_kept_to(
    engine: Engine, integration: uuid.UUID, canvas: FakeCanvas
) -> None:
    # Longer than the HTTP client waits in-process (30 s) and than any backoff step (300 s).
    canvas.throttle(times=1, retry_after="500", path="/api/v1/courses")
    with engine.begin() as connection:
        assert claim_now(connection, integration).claimed

    with pytest.raises(Retry) as retried:
        _run_sync_task(integration, retries=2)  # two failures already: throttling is not one

    assert isinstance(retried.value.when, float) and retried.value.when >= 500
    assert retried.value.sig is not None
    run_id = str(integration_row(engine, integration).sync_run_id)
    assert retried.value.sig.kwargs == {
        "throttled": 1,
        "ignore_not_before": False,
        "run_id": run_id,
    }
    assert integration_row(engine, integration).last_sync_status == "running", "claim kept"

    canvas.throttle(times=1, retry_after="3600", path="/api/v1/courses")
    report = _run_sync_task(integration, retries=3, throttled=1)

    assert report["status"] == "failed", "an hour is beyond what a retry waits"
    row = integration_row(engine, integration)
    assert row.last_sync_status == "failed" and "asked to wait 3600s" in row.sync_error_message
    in_an_hour = "now() + interval '3600 seconds'"
    assert scalar(engine, f"SELECT not_before BETWEEN {in_an_hour} - interval '1 minute'"
                          f" AND {in_an_hour} FROM lms_integrations") is True  # fmt: skip
    _set_times(engine, "last_sync_at = now() - interval '20 minutes'")  # failure back-off over
    with engine.begin() as connection:
        assert claim_due(connection) == [], "not before the time the LMS named"
        (shown,) = list_integrations(connection)
    assert shown.not_before == shown.next_sync_at == row.not_before

    _set_times(engine, "not_before = now() - interval '1 second'")  # the hour is over
    with engine.begin() as connection:
        assert claimed_ids(claim_due(connection)) == [integration]
    assert _run_sync_task(integration)["status"] == "success"
    assert integration_row(engine, integration).not_before is None, "a success clears it"


def test_a_course_throttled_for_long_ends_the_run_and_no_sync_runs_before_the_wait(
    engine: Engine, integration: uuid.UUID, canvas: FakeCanvas
) -> None:
    canvas.throttle(times=1, retry_after="3600", path="/api/v1/courses/")  # the first course

    report = sync(engine, integration, client_factory=no_sleep)

    assert (report.status, report.courses_failed) == ("failed", 3)
    assert "2 course(s) not read: the LMS asked to wait 3600s" in (report.message or "")
    assert len(canvas.requests_to("/api/v1/courses/")) == 1, "the LMS was asked nothing more"
    assert report.not_before is not None
    assert report.not_before == integration_row(engine, integration).not_before
    with engine.begin() as connection:
        refused = claim_now(connection, integration)
    assert not refused.claimed
    until = report.not_before.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert f"the LMS asked (Retry-After) not to be called before {until}" in (refused.reason or "")
    assert "--ignore-retry-after" in (refused.reason or "")

    overridden = sync(engine, integration, ignore_not_before=True)
    assert overridden.status == "success" and overridden.not_before is None


def test_a_run_claimed_before_the_lms_asked_to_wait_does_not_call_it_unless_overridden(
    engine: Engine, integration: uuid.UUID, canvas: FakeCanvas, caplog: pytest.LogCaptureFixture
) -> None:
    """A queued message (or a retry) meets a not_before the grade drain wrote after the claim."""
    with engine.begin() as connection:
        assert claim_now(connection, integration).claimed
        until = set_not_before(connection, integration, 3600)

    with caplog.at_level(logging.INFO, logger="lms.sync"):
        report = _run_sync_task(integration)

    assert report["status"] == "skipped" and canvas.requests_to("/api/v1/") == []
    shown = until.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    reason = f"the LMS asked (Retry-After) not to be called before {shown}"
    assert f"LMS sync of {integration} skipped: {reason}" in caplog.text
    row = integration_row(engine, integration)
    assert (row.last_sync_status, row.not_before) == ("failed", until), "the claim ends"
    assert row.sync_error_message.startswith(f"not run: {reason}")
    _set_times(engine, "last_sync_at = now() - interval '20 minutes'")  # failure back-off over
    with engine.begin() as connection:
        assert claim_due(connection) == [], "beat waits for not_before, as after a throttled run"
        assert claim_now(connection, integration, ignore_not_before=True).claimed

    assert _run_sync_task(integration, ignore_not_before=True)["status"] == "success"
    assert integration_row(engine, integration).not_before is None


def _set_times(engine: Engine, assignment: str) -> None:
    with engine.begin() as connection:
        connection.execute(text(f"UPDATE lms_integrations SET {assignment}"))


def test_a_rejected_token_fails_with_the_lms_message_and_the_token_shows_nowhere(
    engine: Engine,
    toolbox_env: dict[str, str],
    canvas: FakeCanvas,
    caplog: pytest.LogCaptureFixture,
) -> None:
    secret = "sekret-canvas-token-0042"
    integration = add_canvas(engine, canvas.base_url, secret)
    with caplog.at_level(logging.DEBUG):
        report = sync(engine, integration)
    assert report.status == "failed"
    row = integration_row(engine, integration)
    assert "HTTP 401" in row.sync_error_message and "Invalid access token" in row.sync_error_message
    assert secret not in caplog.text and secret not in repr(report)
    stored = scalar(engine, "SELECT row_to_json(i)::text FROM lms_integrations i")
    assert secret not in stored and row.api_key_encrypted.startswith("gAAAAA")


def test_the_worker_line_of_a_sync_that_failed_as_a_whole_says_why_with_secrets_masked(
    engine: Engine, integration: uuid.UUID, canvas: FakeCanvas, caplog: pytest.LogCaptureFixture
) -> None:
    """Counts alone (``0 course(s) failed``) left the operator to look the reason up."""
    legacy = canvas.base_url.replace("http://", "http://admin:S3cret@")
    with engine.begin() as connection:
        connection.execute(text("UPDATE lms_integrations SET base_url = :url"), {"url": legacy})
        assert claim_now(connection, integration).claimed
    with caplog.at_level(logging.INFO, logger="lms.sync"):
        assert _run_sync_task(integration)["status"] == "failed"  # the URL's user: a 401
    error = integration_row(engine, integration).sync_error_message
    assert "HTTP 401" in error and "admin:***@" in error
    (line,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert line.startswith(f"LMS sync of {integration} failed in ")
    assert line.endswith(f", 0 course(s) failed; reason: {error}")
    assert "S3cret" not in caplog.text


@pytest.mark.parametrize("json_output", [True, False])
def test_a_worker_logging_a_sync_of_an_address_with_a_password_masks_it(
    engine: Engine,
    integration: uuid.UUID,
    canvas: FakeCanvas,
    capsys: pytest.CaptureFixture[str],
    json_output: bool,
) -> None:
    """An older version stored it; httpx logs every request's URL at INFO, the worker's level."""
    legacy = canvas.base_url.replace("http://", "http://admin:S3cret@")
    with engine.begin() as connection:
        connection.execute(text("UPDATE lms_integrations SET base_url = :url"), {"url": legacy})
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    configure_logging("INFO", json_output=json_output)  # what the worker's setup_logging does
    try:
        report = sync(engine, integration)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    logged = capsys.readouterr().err
    assert report.status == "failed"  # the URL's user is sent instead of the token: 401
    masked = canvas.base_url.replace("http://", "http://admin:***@")
    assert f"HTTP Request: GET {masked}/api/v1/courses" in logged
    assert "S3cret" not in logged
    error = integration_row(engine, integration).sync_error_message
    assert f"GET {masked}/api/v1/courses" in error and "S3cret" not in error


def test_roles_map_to_least_privilege_users_with_placeholders_when_names_collide(
    engine: Engine, integration: uuid.UUID, data: Dataset
) -> None:
    course = next(iter(data.courses))
    extra = {role: data.add_user("Ann", "Lee") for role in ("ta", "observer", "designer")}
    for role, user in extra.items():
        data.enroll(course, user.id, role)

    assert sync(engine, integration).status == "success"

    with engine.connect() as connection:
        users = {
            row.external_user_id: row
            for row in connection.execute(
                text(
                    "SELECT l.external_user_id, u.role, u.username, u.email, e.role AS lms_role"
                    " FROM lms_user_links l JOIN users u ON u.id = l.user_id"
                    " JOIN lms_enrollments e ON e.user_id = u.id"
                    " WHERE l.external_user_id = ANY(:ids)"
                ),
                {"ids": [user.id for user in extra.values()]},
            )
        }
    assert {role: users[user.id].role for role, user in extra.items()} == {
        "ta": "teacher", "observer": "student", "designer": "teacher",
    }  # fmt: skip
    assert users[extra["designer"].id].lms_role == "admin"
    # Same LMS username thrice: the first (lowest LMS id) gets it, the others a placeholder.
    assert users[extra["ta"].id].username == "ann.lee"
    for role in ("observer", "designer"):
        assert users[extra[role].id].username == placeholder_username(integration, extra[role].id)
    assert all(row.email.endswith("@lms.invalid") for row in users.values())  # Canvas gives none


def test_roster_and_assignment_sync_can_be_switched_off(
    engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas
) -> None:
    integration = add_canvas(
        engine, canvas.base_url, canvas.token, roster_sync_enabled=False, content_sync_enabled=False
    )
    report = sync(engine, integration)
    assert report.status == "success" and report.courses.inserted == 3
    assert scalar(engine, "SELECT count(*) FROM lms_assignments") == 0
    assert scalar(engine, "SELECT count(*) FROM lms_enrollments") == 0
    assert canvas.requests_to("/api/v1/courses/") == []


def _enrollments(engine: Engine, external_course_id: str) -> list[object]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text(
                    "SELECT e.* FROM lms_enrollments e JOIN lms_courses c ON c.id = e.lms_course_id"
                    " WHERE c.external_course_id = :c"
                ),
                {"c": external_course_id},
            )
        )


def _deleted(engine: Engine, table: str, column: str, value: str) -> bool:
    return bool(scalar(engine, f"SELECT deleted_at IS NOT NULL FROM {table} WHERE {column} = :v",
                       v=value))  # fmt: skip


def _before_the_second_course_write(
    monkeypatch: pytest.MonkeyPatch, action: Callable[[], int]
) -> list[int]:
    """Run ``action`` just before the sync writes its second course; what it returned."""
    real, done = lms.sync.write_course, []

    def write(connection: Any, *args: Any) -> Any:
        courses = connection.execute(text("SELECT count(*) FROM lms_courses")).scalar_one()
        if not done and courses == 1:
            done.append(action())
        return real(connection, *args)

    monkeypatch.setattr(lms.sync, "write_course", write)
    return done


_LOCK_HOLDER = (
    "pid IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2"
    " AND classid = CAST(:namespace AS oid))"
)


def test_the_end_of_the_session_holding_the_sync_lock_does_not_turn_the_run_into_an_error(
    engine: Engine, integration: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run wrote its end, then unlocking on the dead session raised ``AdminShutdown``:
    ``lms sync --now`` showed an error instead of its report, and the worker's task
    failed with a traceback and never logged the run's line or its error_logs row."""
    killed = _before_the_second_course_write(
        monkeypatch,
        lambda: terminate_sessions(engine, _LOCK_HOLDER, namespace=SYNC_LOCK_NAMESPACE),
    )
    report = sync(get_engine(), integration)  # pooled, as a worker's
    assert killed == [1]
    assert report.status == "success", report.message
    row = integration_row(engine, integration)
    assert row.last_sync_status == "success" and row.sync_error_message is None
    assert scalar(engine, "SELECT count(*) FROM lms_courses") == 3


def test_a_course_whose_session_ended_while_it_was_written_is_written_again(
    engine: Engine, integration: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """All of the database's sessions ended (``pg_terminate_backend``) as the second
    course was written: that course used to fail (``course 1014: AdminShutdown``, the run
    ``partial``, the next sync an hour later); its snapshot is read, so it is written
    again on a new connection."""
    killed = _before_the_second_course_write(monkeypatch, lambda: terminate_sessions(engine))
    report = sync(get_engine(), integration)  # pooled, as a worker's
    assert killed and killed[0] >= 1
    assert (report.status, report.courses_failed, report.errors) == ("success", 0, [])
    assert integration_row(engine, integration).last_sync_status == "success"
    assert scalar(engine, "SELECT count(*) FROM lms_courses") == report.courses.inserted == 3
    enrollments = scalar(engine, "SELECT count(*) FROM lms_enrollments")
    assert enrollments == report.enrollments.inserted == 15  # 4 students and a teacher each


def test_an_lms_that_stops_answering_mid_sync_is_asked_for_no_further_course(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """It used to cost each remaining course its retries: 12 courses, 60 waits, 89 s of
    backoff (six 30 s timeouts a course for an LMS that hangs), so a district's hundreds
    of courses ran into the sync's time limit.  Two courses failing is a course's
    problem; three in a row, the LMS's."""
    data = Dataset.generate(courses=8, students_per_course=2, assignments_per_course=1)
    with FakeCanvas(data) as canvas:
        integration = add_canvas(engine, canvas.base_url, canvas.token)
        ids = list(data.courses)
        down = {ids[0], ids[1], *ids[3:]}  # the third course still answers
        canvas.inject(Fault(10_000, Reply.text("bad gateway", 502), match=lambda request: any(
            request.path.startswith(f"/api/v1/courses/{course}/") for course in down)))  # fmt: skip
        report = sync(engine, integration, client_factory=no_sleep)
        asked = {course for course in ids if canvas.requests_to(f"/api/v1/courses/{course}/")}
    assert asked == set(ids[:6]), "three silent courses in a row (4-6): no 7th or 8th"
    assert (report.status, report.courses_listed, report.courses_failed) == ("partial", 8, 7)
    assert (
        report.errors[-1] == "2 course(s) not read: the LMS did not answer for 3 courses in a row"
    )
    assert scalar(engine, "SELECT count(*) FROM lms_courses") == 1


def test_a_run_whose_lock_went_with_its_session_stops_once_another_run_took_the_sync(
    engine: Engine, integration: uuid.UUID, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With its lock's session gone, the lock was free while the run went on: an operator's
    ``lms sync`` took the sync over at once (beat would once the claim is stale) and both
    runs wrote the same courses; the first still reported ``success``, an end it could not
    write.  It takes its lock again before the next course, or stops there."""
    with contextlib.ExitStack() as other_run:

        def take_over() -> int:
            killed = terminate_sessions(engine, _LOCK_HOLDER, namespace=SYNC_LOCK_NAMESPACE)
            with engine.begin() as connection:
                assert claim_now(connection, integration).claimed, "the lock looked free"
            assert other_run.enter_context(sync_lock(engine, integration))
            return killed

        killed = _before_the_second_course_write(monkeypatch, take_over)
        report = sync(get_engine(), integration)
        assert killed == [1]
        assert report.status == "skipped" and "another run took the sync over" in str(
            report.message
        )
    assert scalar(engine, "SELECT count(*) FROM lms_courses") == 2, "no third course"
    row = integration_row(engine, integration)
    assert row.last_sync_status == "running", "the end is the other run's to write"
