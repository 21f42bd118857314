"""CanvasClient against the fake Canvas over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from lms.base import ConnectionConfig, Course, Credentials, GradeSubmission
from lms.canvas import CanvasClient
from lms.paging import parse_link_header
from models.errors import (
    ConfigurationError,
    LMSAuthRejected,
    LMSRequestRejected,
    LMSUnavailable,
    ValidationFailed,
)
from tests.lms.fakes import Dataset, FakeCanvas
from tests.lms.fakes.server import Fault, RecordedRequest, Reply

NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def data() -> Dataset:
    return Dataset.generate(courses=3, students_per_course=4, assignments_per_course=2)


@pytest.fixture
def canvas(data: Dataset) -> Iterator[FakeCanvas]:
    with FakeCanvas(data) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connect(canvas: FakeCanvas, sleeps: list[float]) -> Iterator[Callable[..., CanvasClient]]:
    clients: list[CanvasClient] = []

    def make(
        token: str | None = None, *, sleep: Callable[[float], None] | None = None, **config: Any
    ) -> CanvasClient:
        config.setdefault("timeout_seconds", 2.0)
        settings = ConnectionConfig(
            "canvas", canvas.base_url, Credentials(api_key=token or canvas.token), **config
        )
        client = CanvasClient(settings, sleep=sleep or sleeps.append)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def first_student(data: Dataset, course_id: str) -> str:
    return next(e.user_id for e in data.course_enrollments(course_id) if e.role == "student")


def grade_for(
    data: Dataset, score: str = "8.5", *, at: dt.datetime = NOW, comment: str | None = None
) -> GradeSubmission:
    course_id = next(iter(data.courses))
    assignment = data.course_assignments(course_id)[0]
    return GradeSubmission(
        course_external_id=course_id,
        assignment_external_id=assignment.id,
        external_user_id=first_student(data, course_id),
        score=Decimal(score),
        points_possible=assignment.points_possible,
        timestamp=at,
        sourced_id="passback-1",
        comment=comment,
    )


# listing -------------------------------------------------------------------------


@pytest.mark.parametrize("include_last_link", [True, False])
def test_courses_page_through_link_headers(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient], include_last_link: bool
) -> None:
    canvas.data = Dataset.generate(courses=250, students_per_course=1, assignments_per_course=0)
    canvas.include_last_link = include_last_link
    courses = list(connect().list_courses())
    assert len(courses) == 250
    assert len({course.external_id for course in courses}) == 250
    assert len(canvas.requests_to("/api/v1/courses")) == 3
    first = canvas.requests_to("/api/v1/courses")[0]
    assert first.query["per_page"] == ["100"]
    assert "term" in first.query["include[]"]
    course = courses[0]
    assert course.title == "Course 1"
    assert course.instructor_name == "Teacher Of1"
    assert course.start_date == dt.date(2025, 8, 25)
    assert course.description == "Generated course 1"


class LoopingCanvas(FakeCanvas):
    """A Canvas (or a proxy before it) whose last page names the first as ``rel="next"``:
    its own ``rel="first"`` link, parameters in another order, ``page=1`` spelled out."""

    def _paged(self, request: RecordedRequest, items: list[Any]) -> Reply:
        reply = super()._paged(request, items)
        links = parse_link_header(reply.headers["Link"])
        if "next" not in links:
            reply.headers["Link"] += f', <{links["first"]}>; rel="next"'
        return reply


@pytest.mark.parametrize("listing", ["courses", "assignments"])
def test_a_next_link_back_to_the_first_page_is_refused_before_reading_it_again(
    data: Dataset, listing: str
) -> None:
    """The guard compared URL strings: ``?page=1&per_page=2`` is not the first request's
    ``?per_page=100`` (Canvas caps it at 2), so page 1 was read again before it stopped."""
    course = next(iter(data.courses))
    data.add_assignment(course, "A third", points_possible=10)  # two pages of each, then
    with LoopingCanvas(data, max_per_page=2) as looping:
        config = ConnectionConfig("canvas", looping.base_url, Credentials(api_key=looping.token))
        path = "/api/v1/courses" + ("" if listing == "courses" else f"/{course}/assignments")
        with CanvasClient(config) as client, pytest.raises(ValidationFailed) as caught:
            list(client.list_courses() if listing == "courses" else client.list_assignments(course))
        pages = [r.arg("page") for r in looping.requests_to(path) if r.path == path]
    assert pages == [None, "2"]
    assert caught.value.message.endswith(": rel=next points back to a page already read")


def test_a_refused_token_is_refused_credentials_and_a_closed_course_only_that_course(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    """Canvas answers 401 for both: ``WWW-Authenticate`` marks the token's own refusal,
    on which a sync stops; "user not authorized" refuses one course, which fails alone."""
    course = next(iter(canvas.data.courses))
    canvas.restrict_by_date(course)
    with pytest.raises(LMSRequestRejected) as closed:
        list(connect().list_roster(course))
    canvas.expire_token(canvas.token)
    with pytest.raises(LMSAuthRejected) as refused:
        list(connect().list_courses())
    assert (closed.value.status_code, refused.value.status_code) == (401, 401)
    assert not isinstance(closed.value, LMSAuthRejected)
    assert "Invalid access token" in refused.value.message


def test_account_courses_when_an_account_is_configured(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    assert len(list(connect(options={"account_id": "1"}).list_courses())) == 3
    assert canvas.requests_to("/api/v1/accounts/1/courses")


def test_a_course_restricted_by_date_is_read_as_restricted_without_blank_fields(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    named, bare, open_ = canvas.data.courses
    canvas.restrict_by_date(named, shown=("name", "uuid"))
    canvas.restrict_by_date(bare)
    client = connect()
    courses = {course.external_id: course for course in client.list_courses()}
    assert courses[named] == Course(named, "Course 1", restricted=True)
    assert courses[bare] == Course(bare, bare, restricted=True)  # the id is all Canvas shows
    assert courses[bare].raw == {"id": int(bare), "access_restricted_by_date": True}
    assert not courses[open_].restricted and courses[open_].start_date == dt.date(2025, 8, 25)
    with pytest.raises(LMSRequestRejected, match="HTTP 401: user not authorized"):
        list(client.list_roster(named))  # what Canvas answers: the sync does not ask
    with pytest.raises(LMSRequestRejected, match="HTTP 401: user not authorized"):
        client.submit_grade(grade_for(canvas.data))  # a grade too: the drain holds it
    assert canvas.data.api_writes() == []


@pytest.mark.parametrize("flag", ['"true"', "1", '"false"', "{}"])
def test_access_restricted_by_date_that_is_not_a_boolean_is_refused(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient], flag: str
) -> None:
    body = f'[{{"id": 7, "name": "Ended", "access_restricted_by_date": {flag}}}]'.encode()
    canvas.inject(Fault(1, Reply(200, body, {"Content-Type": "application/json"})))
    with pytest.raises(
        ValidationFailed, match=r"/courses access_restricted_by_date: expected true or false, got "
    ):
        list(connect().list_courses())


def test_access_restricted_by_date_false_is_a_course_read_in_full(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    body = (
        b'[{"id": 7, "name": "Open", "start_at": "2025-08-25T00:00:00Z",'
        b' "access_restricted_by_date": false}]'
    )
    canvas.inject(Fault(1, Reply(200, body, {"Content-Type": "application/json"})))
    (course,) = connect().list_courses()
    assert course == Course("7", "Open", start_date=dt.date(2025, 8, 25))


def test_roster_maps_types_and_states(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    data = canvas.data
    course = data.add_course("Roles")
    people = {name: data.add_user(name, "Person") for name in ("s", "t", "ta", "o", "d", "x")}
    data.enroll(course.id, people["s"].id, "student", "active")
    data.enroll(course.id, people["s"].id, "student", "completed")  # a second section
    data.enroll(course.id, people["t"].id, "teacher", "invited")
    data.enroll(course.id, people["ta"].id, "ta", "inactive")
    data.enroll(course.id, people["o"].id, "observer", "completed")
    data.enroll(course.id, people["d"].id, "designer", "active")
    data.enroll(course.id, people["x"].id, "student", "deleted")
    roster = {entry.external_user_id: entry for entry in connect().list_roster(course.id)}
    assert {uid: (e.role, e.state) for uid, e in roster.items()} == {
        people["s"].id: ("student", "active"),
        people["t"].id: ("teacher", "invited"),
        people["ta"].id: ("ta", "inactive"),
        people["o"].id: ("observer", "completed"),
        people["d"].id: ("admin", "active"),
        people["x"].id: ("student", "dropped"),
    }
    student = roster[people["s"].id]
    assert (student.given_name, student.family_name, student.username) == (
        "s",
        "Person",
        "s.person",
    )


def test_roster_pages_through_many_enrollments(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    canvas.data = Dataset.generate(courses=1, students_per_course=450, assignments_per_course=0)
    course_id = next(iter(canvas.data.courses))
    assert len(list(connect().list_roster(course_id))) == 451
    assert len(canvas.requests_to(f"/api/v1/courses/{course_id}/enrollments")) == 5


def test_next_link_to_another_host_is_refused_without_sending_the_token(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    canvas.data = Dataset.generate(courses=150, students_per_course=1, assignments_per_course=0)
    canvas.link_base = canvas.other_host()
    with pytest.raises(ValidationFailed, match=r"rel=\"next\" points to another host") as caught:
        list(connect().list_courses())
    assert "localhost" in caught.value.message and canvas.token not in caught.value.message
    assert canvas.requests_from_other_host() == []
    assert len(canvas.requests_to("/api/v1/courses")) == 1


def test_assignments_map_fields(canvas: FakeCanvas, connect: Callable[..., CanvasClient]) -> None:
    course_id = next(iter(canvas.data.courses))
    assignments = list(connect().list_assignments(course_id))
    assert [a.points_possible for a in assignments] == [Decimal(10), Decimal(20)]
    first = assignments[0]
    assert first.title == "Assignment 1 of course 1"
    assert first.due_at == dt.datetime(2025, 8, 25, 23, 59, tzinfo=dt.UTC)
    assert first.assignment_type == "online_upload"


def test_unknown_course_is_rejected(connect: Callable[..., CanvasClient]) -> None:
    with pytest.raises(LMSRequestRejected, match="does not exist") as caught:
        list(connect().list_assignments("999999"))
    assert caught.value.status_code == 404


# auth and failures -----------------------------------------------------------------------


def test_invalid_token_is_rejected_without_leaking_it(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    secret = "7~not-a-real-canvas-token-abcdef"
    with pytest.raises(LMSRequestRejected, match="Invalid access token") as caught:
        list(connect(secret).list_courses())
    assert caught.value.status_code == 401
    for text in (str(caught.value), repr(caught.value)):
        assert secret not in text


def test_a_token_with_a_line_break_is_not_quoted_by_the_refusal_of_its_header(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    # h11 refuses the header as "Illegal header value b'Bearer ...\\n...'": the token escaped
    halves = ("7~first-half-of-a-pasted-token", "second-half-of-a-pasted-token")
    with pytest.raises(LMSUnavailable, match="LocalProtocolError") as caught:
        list(connect("\n".join(halves), max_retries=0).list_courses())
    for text in (str(caught.value), repr(caught.value)):
        for half in halves:
            assert half not in text
    assert not canvas.requests


def test_expired_token_is_rejected(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    client = connect()
    assert list(client.list_courses())
    canvas.expire_token(canvas.token)
    with pytest.raises(LMSRequestRejected) as caught:
        list(client.list_courses())
    assert caught.value.status_code == 401
    assert canvas.token not in str(caught.value)


def test_missing_token_is_a_configuration_error() -> None:
    config = ConnectionConfig("canvas", "https://canvas.test", Credentials())
    with pytest.raises(ConfigurationError, match=r"credentials\.api_key"):
        CanvasClient(config)


def test_throttling_is_ridden_out(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient], sleeps: list[float]
) -> None:
    canvas.throttle(times=3, retry_after="2")
    canvas.rate_limit_exceeded(times=2)
    assert len(list(connect().list_courses())) == 3
    assert len(sleeps) == 5
    assert sum(1 for pause in sleeps if pause >= 2) >= 3


def test_cost_bucket_pauses_before_it_runs_dry(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient], sleeps: list[float]
) -> None:
    canvas.data = Dataset.generate(courses=30, students_per_course=0, assignments_per_course=0)
    canvas.max_per_page = 5
    canvas.request_cost, canvas.leak_rate = 200.0, 0.0

    def wait(seconds: float) -> None:
        sleeps.append(seconds)
        canvas.remaining = canvas.bucket_size  # time passes, the bucket drains

    assert len(list(connect(sleep=wait).list_courses())) == 30
    assert len(sleeps) == 1  # after page 3 left 100 units, below the threshold of 150
    assert len(canvas.requests_to("/api/v1/courses")) == 6  # and no 403 to retry


@pytest.mark.parametrize("points", ["NaN", '"NaN"', '"-Infinity"', "1e999999"])
def test_points_possible_that_are_not_a_finite_number_are_refused(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient], points: str
) -> None:
    """Python's json reads NaN and 1e999999 (infinity); ``Decimal`` took them (and the
    strings), and the first comparison in grade scaling raised ``decimal.InvalidOperation``."""
    course_id = next(iter(canvas.data.courses))
    body = f'[{{"id": 7, "name": "Quiz", "points_possible": {points}}}]'.encode()
    canvas.inject(Fault(1, Reply(200, body, {"Content-Type": "application/json"})))
    with pytest.raises(ValidationFailed, match=r": expected a number, got "):
        list(connect().list_assignments(course_id))


def test_5xx_storm_exhausts_the_budget(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    canvas.server_errors(times=20, status=500)
    with pytest.raises(LMSUnavailable, match="after 3 attempt"):
        list(connect(max_retries=2).list_courses())


def test_malformed_json_names_the_url(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    canvas.malformed_json(times=1)
    with pytest.raises(ValidationFailed, match=r"/api/v1/courses\?.*not JSON"):
        list(connect().list_courses())


def test_an_html_error_page_is_named_by_its_title_not_quoted(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    """A firewall or proxy in front of Canvas answers with its own HTML page."""
    page = (
        "<!DOCTYPE html>\n<html><head><title>Access &amp; Denied</title></head>"
        "<body><h1>Request blocked</h1><p>Support ID: 1834</p></body></html>"
    )
    headers = {"Content-Type": "text/html; charset=utf-8"}
    canvas.inject(Fault(reply=Reply(403, page, headers), match=lambda r: r.method == "GET"))
    with pytest.raises(LMSRequestRejected) as caught:
        list(connect().list_courses())
    assert caught.value.message.endswith(
        f"with HTTP 403: an HTML page titled 'Access & Denied' ({len(page)} bytes), "
        "not an answer of the LMS API"
    )
    assert "<" not in caught.value.message and canvas.token not in caught.value.message


def test_timeout_then_success(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient], sleeps: list[float]
) -> None:
    canvas.delay_response(1.5, path="/api/v1/courses")
    assert len(list(connect(timeout_seconds=0.3).list_courses())) == 3
    assert len(sleeps) == 1


# grades -------------------------------------------------------------------------------


def test_grade_is_posted_once(canvas: FakeCanvas, connect: Callable[..., CanvasClient]) -> None:
    grade = grade_for(canvas.data, "8.5", comment="Well done")
    client = connect()
    first = client.submit_grade(grade)
    second = client.submit_grade(grade)
    assert (first.already_applied, second.already_applied) == (False, True)
    writes = canvas.data.api_writes()
    assert [(w.score, w.comment) for w in writes] == [(Decimal("8.5"), "Well done")]
    state = canvas.data.grade(grade.assignment_external_id, grade.external_user_id)
    assert state is not None and state.attempts == 1  # grading opened no student attempt
    put = canvas.requests_to("/api/v1/courses", "PUT")[0]
    assert put.form()["submission[posted_grade]"] == ["8.5"]


def test_lost_response_still_applies_once(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient], sleeps: list[float]
) -> None:
    canvas.delay_response(1.5, method="PUT", path="/api/v1/courses")
    outcome = connect(timeout_seconds=0.3).submit_grade(grade_for(canvas.data, comment="hi"))
    assert outcome.already_applied  # the re-check found the write that had landed
    assert len(canvas.data.api_writes()) == 1
    assert len(canvas.requests_to("/api/v1/courses", "PUT")) == 1


def test_failed_write_is_retried_after_a_recheck(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    canvas.server_errors(times=2, path="/api/v1/courses/", method="PUT")
    outcome = connect().submit_grade(grade_for(canvas.data))
    assert not outcome.already_applied
    assert len(canvas.data.api_writes()) == 1
    assert len(canvas.requests_to("/api/v1/courses/", "PUT")) == 3
    assert len(canvas.requests_to("/api/v1/courses/", "GET")) == 3  # a re-check before each


def test_newer_grade_is_never_replaced(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    grade = grade_for(canvas.data, "3", at=NOW - dt.timedelta(hours=2))
    canvas.data.set_grade(grade.assignment_external_id, grade.external_user_id, 9, at=NOW)
    outcome = connect().submit_grade(grade)
    assert outcome.already_applied and "newer" in (outcome.detail or "")
    assert canvas.data.api_writes() == []
    state = canvas.data.grade(grade.assignment_external_id, grade.external_user_id)
    assert state is not None and state.score == 9


def test_older_grade_is_replaced(canvas: FakeCanvas, connect: Callable[..., CanvasClient]) -> None:
    grade = grade_for(canvas.data, "7")
    earlier = NOW - dt.timedelta(days=1)
    canvas.data.set_grade(grade.assignment_external_id, grade.external_user_id, 2, at=earlier)
    assert not connect().submit_grade(grade).already_applied
    assert [w.score for w in canvas.data.api_writes()] == [Decimal(7)]


def test_grade_is_scaled_to_canvas_points(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    grade = grade_for(canvas.data, "50")  # the assignment is worth 10 in Canvas
    scaled = GradeSubmission(**{**grade.__dict__, "points_possible": Decimal(100)})
    connect().submit_grade(scaled)
    assert [w.score for w in canvas.data.api_writes()] == [Decimal(5)]


def test_grade_for_a_non_student_is_rejected(
    canvas: FakeCanvas, connect: Callable[..., CanvasClient]
) -> None:
    grade = grade_for(canvas.data)
    stranger = GradeSubmission(**{**grade.__dict__, "external_user_id": "424242"})
    with pytest.raises(LMSRequestRejected) as caught:
        connect().submit_grade(stranger)
    assert caught.value.status_code == 404
    assert canvas.data.api_writes() == []


def test_benchmark_scale_sync(canvas: FakeCanvas, connect: Callable[..., CanvasClient]) -> None:
    canvas.data = Dataset.generate(courses=200, students_per_course=30, assignments_per_course=10)
    client = connect()
    courses = list(client.list_courses())
    roster = sum(len(list(client.list_roster(c.external_id))) for c in courses)
    assignments = sum(len(list(client.list_assignments(c.external_id))) for c in courses)
    assert (len(courses), roster, assignments) == (200, 200 * 31, 2000)
    assert canvas.handler_errors == []
