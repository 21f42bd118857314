"""SchoologyClient against the fake Schoology over real HTTP, OAuth 1.0a verified."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from authlib.oauth1 import ClientAuth

from lms.base import ConnectionConfig, Credentials, GradeSubmission
from lms.schoology import OAuth1Signer, SchoologyClient
from models.errors import (
    ConfigurationError,
    LMSRequestRejected,
    LMSUnavailable,
    ValidationFailed,
)
from tests.lms.fakes import Dataset, FakeSchoology, Fault, RecordedRequest, Reply
from tests.lms.fakes.schoology import API_UID

KEY, SECRET = "consumer-key", "consumer-secret-do-not-print"
NOW = dt.datetime.now(dt.UTC)


@pytest.fixture
def schoology() -> Iterator[FakeSchoology]:
    data = Dataset.generate(courses=3, students_per_course=4, assignments_per_course=2)
    with FakeSchoology(data, consumer_key=KEY, consumer_secret=SECRET) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def connect(
    schoology: FakeSchoology, sleeps: list[float]
) -> Iterator[Callable[..., SchoologyClient]]:
    clients: list[SchoologyClient] = []

    def make(
        key: str = KEY, secret: str = SECRET, options: dict[str, Any] | None = None, **config: Any
    ) -> SchoologyClient:
        config.setdefault("timeout_seconds", 2.0)
        settings = ConnectionConfig(
            "schoology",
            config.pop("base_url", schoology.base_url),
            Credentials(client_id=key, client_secret=secret),
            options={"user_id": API_UID, **(options or {})},
            **config,
        )
        client = SchoologyClient(settings, sleep=sleeps.append)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def grade_for(
    data: Dataset, score: str = "8", *, at: dt.datetime = NOW, role: str = "student"
) -> GradeSubmission:
    course_id = next(iter(data.courses))
    assignment = data.course_assignments(course_id)[0]
    user_id = next(e.user_id for e in data.course_enrollments(course_id) if e.role == role)
    return GradeSubmission(
        course_external_id=course_id,
        assignment_external_id=assignment.id,
        external_user_id=user_id,
        score=Decimal(score),
        points_possible=assignment.points_possible,
        timestamp=at,
        sourced_id="passback-7",
        comment="Nice work",
    )


# listing -------------------------------------------------------------------------------


def test_sections_are_listed_with_signed_requests(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    courses = list(connect().list_courses())
    assert [c.title for c in courses] == [f"Course {n}: Section 1" for n in (1, 2, 3)]
    request = schoology.requests_to(f"/v1/users/{API_UID}/sections")[0]
    header = request.headers["authorization"]
    assert header.startswith("OAuth ") and 'oauth_signature_method="HMAC-SHA1"' in header
    assert f'oauth_consumer_key="{KEY}"' in header and SECRET not in header
    assert request.query["start"] == ["0"] and request.query["limit"] == ["200"]


def test_the_header_is_the_one_schoology_documents(schoology: FakeSchoology) -> None:
    """developers.schoology.com/api-documentation/authentication: realm "Schoology API",
    and "for two-legged OAuth requests, the oauth_token still needs to be defined" (empty).
    authlib leaves a blank token out, which the fake, as Schoology, refuses."""
    url = f"{schoology.base_url}/v1/users/{API_UID}/sections"
    signed = next(OAuth1Signer(KEY, SECRET).auth_flow(httpx.Request("GET", url)))
    header = signed.headers["Authorization"]
    assert header.startswith('OAuth realm="Schoology API", ') and 'oauth_token=""' in header
    without = ClientAuth(KEY, SECRET, realm="Schoology API")
    _, bare, _ = without.prepare("GET", url, {}, b"")
    with httpx.Client() as raw:
        assert raw.send(signed).status_code == 200
        refused = raw.get(url, headers={"Authorization": bare["Authorization"]})
    assert refused.status_code == 401 and "oauth_token" in refused.text


def test_base_url_may_end_in_v1(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    assert len(list(connect(base_url=schoology.base_url + "/v1/").list_courses())) == 3


def test_enrollments_page_with_start_and_links_next(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    schoology.data = Dataset.generate(courses=1, students_per_course=450, assignments_per_course=0)
    section = next(iter(schoology.data.courses))
    roster = list(connect().list_roster(section))
    assert len(roster) == 451 and len({r.external_user_id for r in roster}) == 451
    starts = [r.query["start"][0] for r in schoology.requests_to(f"/v1/sections/{section}/")]
    assert starts == ["0", "200", "400"]


@pytest.mark.parametrize(
    ("body", "promise"),
    [
        ({"total": 451, "links": {}}, "its total says 451 items"),
        ({"links": {"next": "/v1/next-page"}}, "its links.next names a next page"),
    ],
    ids=["total", "links.next"],
)
def test_an_empty_page_that_promises_more_fails_the_listing(
    schoology: FakeSchoology,
    connect: Callable[..., SchoologyClient],
    body: dict[str, Any],
    promise: str,
) -> None:
    """Taken for the end, it cut the roster short: a sync marked the rest dropped."""
    schoology.data = Dataset.generate(courses=1, students_per_course=450, assignments_per_course=0)
    section = next(iter(schoology.data.courses))
    schoology.inject(Fault(reply=Reply.json({"enrollment": [], **body}),
                           match=lambda r: r.arg("start") == "200"))  # fmt: skip
    with pytest.raises(ValidationFailed) as caught:
        list(connect().list_roster(section))
    assert caught.value.message.endswith(
        f": the page at start 200 is empty, but {promise}; not taken for the end of the listing"
    )


def test_an_empty_section_is_an_empty_roster(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    section = schoology.data.add_course("Empty", id="9999").id
    assert list(connect().list_roster(section)) == []
    assert list(connect().list_assignments(section)) == []


class StartBlindSchoology(FakeSchoology):
    """Schoology (or a proxy before it) dropping ``start``: each page is the first."""

    def _paged(self, request: RecordedRequest, key: str, items: list[Any]) -> Reply:
        return super()._paged(request.without({"start"}), key, items)


def test_a_server_ignoring_start_is_refused_at_the_first_repeated_page(
    schoology: FakeSchoology,
) -> None:
    data = Dataset.generate(courses=1, students_per_course=450, assignments_per_course=0)
    section = next(iter(data.courses))
    with StartBlindSchoology(data, consumer_key=KEY, consumer_secret=SECRET) as blind:
        config = ConnectionConfig("schoology", blind.base_url,
                                  Credentials(client_id=KEY, client_secret=SECRET),
                                  options={"user_id": API_UID})  # fmt: skip
        with SchoologyClient(config) as client, pytest.raises(ValidationFailed) as caught:
            list(client.list_roster(section))
        assert len(blind.requests_to(f"/v1/sections/{section}/")) == 2
    assert caught.value.message.endswith(
        ": paging repeats itself at start 200 (every record of the page was read already):"
        " links.next does not move on"
    )


def test_links_next_to_another_host_is_not_followed(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    schoology.data = Dataset.generate(courses=1, students_per_course=250, assignments_per_course=0)
    section = next(iter(schoology.data.courses))
    schoology.link_base = schoology.other_host()
    with pytest.raises(ValidationFailed, match=r"links\.next points to another host"):
        list(connect().list_roster(section))
    assert schoology.requests_from_other_host() == []


def test_roster_maps_status_and_admin(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    data = schoology.data
    course = data.add_course("States")
    states = ("active", "inactive", "invited", "completed", "deleted")
    users = {state: data.add_user(state.title(), "Kid") for state in states}
    for state, user in users.items():
        data.enroll(course.id, user.id, "student", state)
    teacher = data.add_user("Ms", "Teach")
    data.enroll(course.id, teacher.id, "teacher")
    roster = {r.external_user_id: (r.role, r.state) for r in connect().list_roster(course.id)}
    assert roster == {
        users["active"].id: ("student", "active"),
        users["inactive"].id: ("student", "inactive"),
        users["invited"].id: ("student", "invited"),
        users["completed"].id: ("student", "completed"),
        teacher.id: ("teacher", "active"),
    }


def test_assignments_read_due_times_in_the_school_zone(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    section = next(iter(schoology.data.courses))
    client = connect(options={"timezone": "America/New_York"})
    first = next(iter(client.list_assignments(section)))
    assert first.points_possible == Decimal(10)
    assert first.due_at == dt.datetime(2025, 8, 25, 23, 59, tzinfo=ZoneInfo("America/New_York"))
    assert first.title == "Assignment 1 of course 1"


# auth and failures ------------------------------------------------------------------------


def test_wrong_secret_gets_401_without_leaking_it(connect: Callable[..., SchoologyClient]) -> None:
    wrong = "definitely-the-wrong-secret"
    client = connect(secret=wrong)
    with pytest.raises(LMSRequestRejected, match="Invalid OAuth signature") as caught:
        list(client.list_courses())
    assert caught.value.status_code == 401
    for text in (str(caught.value), repr(caught.value), repr(client.http), repr(client.config)):
        assert wrong not in text and SECRET not in text


def test_unknown_or_revoked_consumer_gets_401(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    with pytest.raises(LMSRequestRejected, match="Invalid consumer key"):
        list(connect(key="someone-else").list_courses())
    client = connect()
    assert list(client.list_courses())
    schoology.revoke_consumer(KEY)
    with pytest.raises(LMSRequestRejected) as caught:
        list(client.list_courses())
    assert caught.value.status_code == 401


def test_replayed_nonce_is_refused(schoology: FakeSchoology) -> None:
    url = f"{schoology.base_url}/v1/users/{API_UID}/sections"
    signed = next(OAuth1Signer(KEY, SECRET).auth_flow(httpx.Request("GET", url)))
    with httpx.Client() as raw:
        first = raw.send(signed)
        again = raw.send(signed)
    assert first.status_code == 200
    assert again.status_code == 401 and "Nonce" in again.text


@pytest.mark.parametrize(
    ("credentials", "options", "missing"),
    [
        (Credentials(client_secret=SECRET), {"user_id": "1"}, "client_id"),
        (Credentials(client_id=KEY), {"user_id": "1"}, "client_secret"),
        (Credentials(client_id=KEY, client_secret=SECRET), {}, "user_id"),
    ],
)
def test_missing_settings_are_named(
    credentials: Credentials, options: dict[str, str], missing: str
) -> None:
    config = ConnectionConfig(
        "schoology", "https://api.schoology.test", credentials, options=options
    )
    with pytest.raises(ConfigurationError, match=missing) as caught:
        SchoologyClient(config)
    assert SECRET not in str(caught.value)


def test_429_storm_is_ridden_out_with_fresh_signatures(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient], sleeps: list[float]
) -> None:
    schoology.throttle(times=4, retry_after="1")
    assert len(list(connect().list_courses())) == 3
    assert len(sleeps) == 4 and min(sleeps) >= 1
    nonces = {r.headers["authorization"] for r in schoology.requests}
    assert len(nonces) == 5


def test_5xx_storm_exhausts_the_budget(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    schoology.server_errors(times=10, status=502)
    with pytest.raises(LMSUnavailable):
        list(connect(max_retries=2).list_courses())


def test_malformed_json_names_the_url(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    schoology.malformed_json()
    with pytest.raises(ValidationFailed, match=r"/v1/users/1/sections"):
        list(connect().list_courses())


# grades -----------------------------------------------------------------------------------


def test_grade_is_put_once(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    grade = grade_for(schoology.data, "8")
    client = connect()
    assert not client.submit_grade(grade).already_applied
    assert client.submit_grade(grade).already_applied
    writes = schoology.data.api_writes()
    assert [(w.score, w.comment) for w in writes] == [(Decimal(8), "Nice work")]
    put = schoology.requests_to("/v1/sections/", "PUT")
    assert len(put) == 1
    item = put[0].json()["grades"]["grade"][0]
    assert item["type"] == "assignment" and item["grade"] == 8


def test_lost_response_still_applies_once(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    schoology.delay_response(1.5, method="PUT", path="/v1/sections/")
    assert connect(timeout_seconds=0.3).submit_grade(grade_for(schoology.data)).already_applied
    assert len(schoology.data.api_writes()) == 1


def test_newer_grade_is_never_replaced(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    grade = grade_for(schoology.data, "3", at=NOW - dt.timedelta(hours=1))
    schoology.data.set_grade(grade.assignment_external_id, grade.external_user_id, 9, at=NOW)
    outcome = connect().submit_grade(grade)
    assert outcome.already_applied and "newer" in (outcome.detail or "")
    assert schoology.data.api_writes() == []


def test_a_grade_excused_after_the_attempt_is_kept_one_marked_before_is_replaced(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    """The teacher excused the student after the quiz: Schoology's row has no grade, an
    ``exception`` and the time it was set, and the score must not replace it.  Marked
    incomplete before the student took the quiz, the row takes the score."""
    grade = grade_for(schoology.data, "3", at=NOW - dt.timedelta(hours=1))
    student, assignment = grade.external_user_id, grade.assignment_external_id
    schoology.mark_exception(assignment, student, 1, at=NOW)
    outcome = connect().submit_grade(grade)
    assert outcome.already_applied and outcome.detail == (
        "Schoology holds a newer grade (excused); kept"
    )
    assert schoology.data.api_writes() == []

    schoology.mark_exception(assignment, student, 2, at=NOW - dt.timedelta(days=1))
    assert not connect().submit_grade(grade).already_applied
    assert [w.score for w in schoology.data.api_writes()] == [Decimal(3)]


def test_refused_grade_item_is_rejected(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    with pytest.raises(LMSRequestRejected, match="refused the grade") as caught:
        connect().submit_grade(grade_for(schoology.data, role="teacher"))
    assert caught.value.status_code == 404
    assert schoology.data.api_writes() == []


def test_grade_for_an_unenrolled_user_is_rejected(
    schoology: FakeSchoology, connect: Callable[..., SchoologyClient]
) -> None:
    grade = grade_for(schoology.data)
    stranger = GradeSubmission(**{**grade.__dict__, "external_user_id": "987654"})
    with pytest.raises(LMSRequestRejected, match="no enrollment"):
        connect().submit_grade(stranger)
