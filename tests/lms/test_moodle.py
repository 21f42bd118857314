"""MoodleClient against the fake Moodle web services over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from lms.base import ConnectionConfig, Credentials, GradeSubmission
from lms.moodle import MoodleClient, flatten
from models.errors import (
    ConfigurationError,
    LMSAuthRejected,
    LMSRequestRejected,
    LMSUnavailable,
    ValidationFailed,
)
from tests.lms.fakes import Dataset, FakeMoodle, Fault
from tests.lms.fakes.moodle import nest

NOW = dt.datetime.now(dt.UTC)
WRONG_TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def moodle() -> Iterator[FakeMoodle]:
    data = Dataset.generate(courses=3, students_per_course=4, assignments_per_course=2)
    with FakeMoodle(data) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connect(moodle: FakeMoodle, sleeps: list[float]) -> Iterator[Callable[..., MoodleClient]]:
    clients: list[MoodleClient] = []

    def make(token: str | None = None, **config: Any) -> MoodleClient:
        config.setdefault("timeout_seconds", 2.0)
        credentials = Credentials(api_key=token or moodle.token)
        client = MoodleClient(
            ConnectionConfig("moodle", moodle.base_url, credentials, **config), sleep=sleeps.append
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def grade_for(
    data: Dataset, score: str = "7", *, at: dt.datetime = NOW, comment: str | None = "Good"
) -> GradeSubmission:
    course_id = next(iter(data.courses))
    assignment = data.course_assignments(course_id)[1]
    user_id = next(e.user_id for e in data.course_enrollments(course_id) if e.role == "student")
    return GradeSubmission(
        course_external_id=course_id,
        assignment_external_id=assignment.id,
        external_user_id=user_id,
        score=Decimal(score),
        points_possible=assignment.points_possible,
        timestamp=at,
        sourced_id="passback-3",
        comment=comment,
    )


def assert_token_never_in_urls(moodle: FakeMoodle, token: str) -> None:
    assert moodle.requests
    for request in moodle.requests:
        assert token not in request.url
        assert request.method == "POST"


def test_flatten_and_nest_round_trip() -> None:
    args = {"courseid": 5, "options": [{"name": "limitfrom", "value": 0}], "flag": True}
    fields = flatten(args)
    assert fields == {
        "courseid": "5",
        "options[0][name]": "limitfrom",
        "options[0][value]": "0",
        "flag": "1",
    }
    assert nest(fields.items()) == {
        "courseid": "5",
        "options": [{"name": "limitfrom", "value": "0"}],
        "flag": "1",
    }


# listing --------------------------------------------------------------------------------


def test_courses_skip_the_site_course(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    courses = list(connect().list_courses())
    assert [c.title for c in courses] == ["Course 1", "Course 2", "Course 3"]
    assert courses[0].start_date == dt.date(2025, 8, 25)
    assert courses[0].end_date == dt.date(2025, 12, 23)
    assert_token_never_in_urls(moodle, moodle.token)
    assert "wsfunction=core_course_get_courses" in moodle.requests[0].url


def test_roster_maps_roles_and_suspensions(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    data = moodle.data
    course = data.add_course("Roles")
    people = {name: data.add_user(name, "Person") for name in ("s", "t", "ta", "d", "o", "gone")}
    data.enroll(course.id, people["s"].id, "student")
    data.enroll(course.id, people["t"].id, "teacher")
    data.enroll(course.id, people["ta"].id, "ta", "inactive")
    data.enroll(course.id, people["d"].id, "designer")
    data.enroll(course.id, people["o"].id, "observer")
    data.enroll(course.id, people["gone"].id, "student", "deleted")
    roster = {r.external_user_id: (r.role, r.state) for r in connect().list_roster(course.id)}
    assert roster == {
        people["s"].id: ("student", "active"),
        people["t"].id: ("teacher", "active"),
        people["ta"].id: ("ta", "inactive"),
        people["d"].id: ("admin", "active"),
        people["o"].id: ("observer", "active"),
    }


def test_roster_pages_with_limitfrom(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    moodle.data = Dataset.generate(courses=1, students_per_course=450, assignments_per_course=0)
    course_id = next(iter(moodle.data.courses))
    roster = list(connect().list_roster(course_id))
    assert len(roster) == 451 and {r.email for r in roster if r.role == "student"}
    calls = [nest(r.form_pairs()) for r in moodle.requests]
    listing = [c for c in calls if not any(o["name"] == "onlysuspended" for o in c["options"])]
    assert [c["options"][0]["value"] for c in listing] == ["0", "200", "400"]


class LimitfromBlindMoodle(FakeMoodle):
    """Moodle (or a plugin before it) that ignores ``limitfrom``: each page is the first."""

    def _enrolled_users(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        kept = [o for o in params.get("options", []) if o["name"] != "limitfrom"]
        return super()._enrolled_users({**params, "options": kept})


def test_a_server_ignoring_limitfrom_is_refused_at_the_first_repeated_page() -> None:
    """Before, a course of 200 users or more was listed for ever."""
    data = Dataset.generate(courses=1, students_per_course=450, assignments_per_course=0)
    course_id = next(iter(data.courses))
    with LimitfromBlindMoodle(data) as blind:
        config = ConnectionConfig("moodle", blind.base_url, Credentials(api_key=blind.token))
        with MoodleClient(config) as client, pytest.raises(ValidationFailed) as caught:
            list(client.list_roster(course_id))
        assert len(blind.requests) == 3  # the suspended users, then two pages of everyone
    assert caught.value.message == (
        f"core_enrol_get_enrolled_users of course {course_id}: paging repeats itself at"
        " limitfrom 200 (every record of the page was read already): the server ignores"
        " limitfrom"
    )


def test_assignments_map_fields(moodle: FakeMoodle, connect: Callable[..., MoodleClient]) -> None:
    course_id = next(iter(moodle.data.courses))
    assignments = list(connect().list_assignments(course_id))
    assert [a.points_possible for a in assignments] == [Decimal(10), Decimal(20)]
    assert assignments[0].due_at == dt.datetime(2025, 8, 25, 23, 59, tzinfo=dt.UTC)
    assert assignments[0].unlock_at is None


# Moodle's HTTP-200 errors -----------------------------------------------------------------


def test_invalid_token_is_rejected_without_leaking_it(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    with pytest.raises(LMSAuthRejected, match="invalidtoken") as caught:  # grades wait
        list(connect(WRONG_TOKEN).list_courses())
    for text in (str(caught.value), repr(caught.value)):
        assert WRONG_TOKEN not in text
    assert_token_never_in_urls(moodle, WRONG_TOKEN)


def test_expired_token_is_rejected(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    client = connect()
    assert list(client.list_courses())
    moodle.expire_token(moodle.token)
    with pytest.raises(LMSAuthRejected, match="Invalid token"):
        list(client.list_courses())


def test_database_errors_are_transient(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    moodle.error_body(times=1, function="core_course_get_courses")
    with pytest.raises(LMSUnavailable, match="dmlreadexception"):
        list(connect().list_courses())


def test_other_error_bodies_are_rejections(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    moodle.error_body(
        errorcode="nopermissions",
        exception="required_capability_exception",
        message="Sorry, but you do not currently have permissions to do that.",
    )
    with pytest.raises(LMSRequestRejected, match="nopermissions"):
        list(connect().list_courses())
    with pytest.raises(LMSRequestRejected, match="invalidrecord"):
        connect().call("core_no_such_function")


def test_error_body_on_save_is_never_success(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    moodle.error_body(
        errorcode="invalidparameter",
        exception="invalid_parameter_exception",
        message="Invalid parameter value detected",
        function="mod_assign_save_grade",
    )
    with pytest.raises(LMSRequestRejected, match="invalidparameter"):
        connect().submit_grade(grade_for(moodle.data))
    assert moodle.data.api_writes() == []


def test_transient_error_on_save_is_rechecked_and_retried(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient], sleeps: list[float]
) -> None:
    moodle.error_body(times=2, function="mod_assign_save_grade")
    assert not connect().submit_grade(grade_for(moodle.data)).already_applied
    assert len(moodle.data.api_writes()) == 1 and len(sleeps) == 2


def test_5xx_storm_exhausts_the_budget(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    moodle.server_errors(times=10)
    with pytest.raises(LMSUnavailable, match="after 2 attempt") as caught:
        list(connect(max_retries=1).list_courses())
    assert moodle.token not in str(caught.value)


def test_html_instead_of_json_names_the_url(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    moodle.malformed_json()
    with pytest.raises(ValidationFailed, match=r"server\.php\?wsfunction=core_course_get_courses"):
        list(connect().list_courses())


def test_missing_token_is_a_configuration_error() -> None:
    config = ConnectionConfig("moodle", "https://moodle.test", Credentials())
    with pytest.raises(ConfigurationError, match=r"credentials\.api_key"):
        MoodleClient(config)


# grades ---------------------------------------------------------------------------------


def test_grade_is_saved_once_without_a_new_attempt(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    grade = grade_for(moodle.data, "7")
    client = connect()
    assert not client.submit_grade(grade).already_applied
    assert client.submit_grade(grade).already_applied
    assert [(w.score, w.comment) for w in moodle.data.api_writes()] == [(Decimal(7), "Good")]
    state = moodle.data.grade(grade.assignment_external_id, grade.external_user_id)
    assert state is not None and state.attempts == 1
    saves = [r for r in moodle.requests if "mod_assign_save_grade" in r.url]
    assert len(saves) == 1
    sent = nest(saves[0].form_pairs())
    assert (sent["addattempt"], sent["applytoall"]) == ("0", "0")


def test_a_group_assignment_grade_goes_to_the_student_alone(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    """``applytoall=1`` applies the grade "to all members of the group": one pupil's quiz
    score overwrote every teammate's grade."""
    grade = grade_for(moodle.data, "7")
    moodle.group_assignments.add(grade.assignment_external_id)
    assert not connect().submit_grade(grade).already_applied
    written = moodle.data.api_writes(grade.assignment_external_id)
    assert [(w.user_id, w.score) for w in written] == [(grade.external_user_id, Decimal(7))]
    teammates = [e.user_id for e in moodle.data.course_enrollments(grade.course_external_id)
                 if e.role == "student" and e.user_id != grade.external_user_id]  # fmt: skip
    assert teammates
    assert all(moodle.data.grade(grade.assignment_external_id, t) is None for t in teammates)


def test_lost_response_still_applies_once(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    moodle.inject(Fault(delay=1.5, match=lambda r: "mod_assign_save_grade" in r.url))
    outcome = connect(timeout_seconds=0.3).submit_grade(grade_for(moodle.data))
    assert outcome.already_applied  # the re-read found the save that had landed
    assert len(moodle.data.api_writes()) == 1
    assert len([r for r in moodle.requests if "mod_assign_save_grade" in r.url]) == 1


def test_newer_grade_is_never_replaced(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    grade = grade_for(moodle.data, "3", at=NOW - dt.timedelta(hours=1))
    moodle.data.set_grade(grade.assignment_external_id, grade.external_user_id, 9, at=NOW)
    outcome = connect().submit_grade(grade)
    assert outcome.already_applied and "newer" in (outcome.detail or "")
    assert moodle.data.api_writes() == []


def test_grade_for_a_non_student_is_rejected(
    moodle: FakeMoodle, connect: Callable[..., MoodleClient]
) -> None:
    grade = grade_for(moodle.data)
    stranger = GradeSubmission(**{**grade.__dict__, "external_user_id": "555555"})
    with pytest.raises(LMSRequestRejected, match="invalidparameter"):
        connect().submit_grade(stranger)
