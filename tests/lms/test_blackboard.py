"""BlackboardClient against a fake Learn server over real HTTP."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any

import pytest

from lms.base import ConnectionConfig, Credentials, GradeSubmission
from lms.blackboard import BlackboardClient
from models.errors import LMSRequestRejected, LMSUnavailable, ValidationFailed
from tests.lms.fakes.blackboard import FakeBlackboard, bb_id
from tests.lms.fakes.dataset import Dataset
from tests.lms.fakes.server import Fault, RecordedRequest, Reply

WHEN = dt.datetime(2026, 3, 2, 14, 30, tzinfo=dt.UTC)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def data() -> Dataset:
    data = Dataset()
    for number in range(1, 6):
        data.add_course(f"Biology {number}", id=str(number), code=f"BIO-{number}")
    teacher = data.add_user("Ada", "Lovelace", id="t1")
    data.enroll("1", teacher.id, "teacher")
    for seat, state in enumerate(("active", "inactive", "completed", "deleted")):
        data.enroll("1", data.add_user(f"Kid{seat}", "Smith", id=f"s{seat}").id, state=state)
    data.enroll("1", data.add_user("Tom", "Assist", id="ta1").id, "ta")
    data.add_assignment("1", "Quiz 1", points_possible=100, due_at=WHEN)
    return data


@pytest.fixture
def fake(data: Dataset) -> Iterator[FakeBlackboard]:
    with FakeBlackboard(data, page_size=2) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(
    fake: FakeBlackboard,
    sleeps: list[float],
    *,
    secret: str | None = None,
    clock: Clock | None = None,
    max_retries: int = 5,
) -> BlackboardClient:
    config = ConnectionConfig(
        platform="blackboard",
        base_url=fake.base_url,
        credentials=Credentials(client_id=fake.app_key, client_secret=secret or fake.app_secret),
        max_retries=max_retries,
    )
    return BlackboardClient(config, sleep=sleeps.append, clock=clock or Clock())


@pytest.fixture
def client(fake: FakeBlackboard, sleeps: list[float]) -> Iterator[BlackboardClient]:
    with closing(make_client(fake, sleeps)) as bb:
        yield bb


def grade(
    score: str = "85", points: str = "100", *, column: str = "", comment: str | None = None
) -> GradeSubmission:
    return GradeSubmission(
        course_external_id=bb_id("1"),
        assignment_external_id=column,
        external_user_id=bb_id("s0"),
        score=Decimal(score),
        points_possible=Decimal(points),
        timestamp=WHEN,
        sourced_id="pb-1",
        comment=comment,
    )


def quiz_id(data: Dataset) -> str:
    return bb_id(next(iter(data.assignments)))


def test_courses_page_through_next_page_with_one_token(
    client: BlackboardClient, fake: FakeBlackboard
) -> None:
    courses = list(client.list_courses())

    assert [c.title for c in courses] == [f"Biology {n}" for n in range(1, 6)]
    assert courses[0].external_id == "_1_1"
    assert len(fake.requests_to("/learn/api/public/v3/courses")) == 3
    assert len(fake.token_requests()) == 1
    assert fake.token_requests()[0].headers["authorization"].startswith("Basic ")


def test_next_page_on_another_host_is_refused_without_sending_the_token(
    client: BlackboardClient, fake: FakeBlackboard
) -> None:
    fake.link_base = fake.other_host()
    with pytest.raises(ValidationFailed, match=r"paging\.nextPage points to another host"):
        list(client.list_courses())
    assert fake.requests_from_other_host() == []


class OffsetBlindBlackboard(FakeBlackboard):
    """A Learn server (or a proxy before it) that drops ``offset``: each page is the first,
    though ``paging.nextPage`` moves on."""

    def _paged(self, request: RecordedRequest, items: list[dict[str, Any]]) -> Reply:
        return super()._paged(request.without({"offset"}), items)


def test_a_server_ignoring_offset_is_refused_at_the_first_repeated_page(
    data: Dataset, sleeps: list[float]
) -> None:
    with OffsetBlindBlackboard(data, page_size=2) as blind:
        with (
            closing(make_client(blind, sleeps)) as client,
            pytest.raises(ValidationFailed) as caught,
        ):
            list(client.list_courses())
        assert len(blind.requests_to("/learn/api/public/v3/courses")) == 2
    assert caught.value.message.endswith(
        ": paging repeats itself (every record of the page was read already):"
        " paging.nextPage does not move on"
    )


def test_roster_maps_roles_and_availability(client: BlackboardClient) -> None:
    roster = {e.external_user_id: e for e in client.list_roster(bb_id("1"))}

    assert set(roster) == {"_t1_1", "_s0_1", "_s1_1", "_s2_1", "_ta1_1"}  # deleted left out
    assert roster["_t1_1"].role == "teacher"
    assert roster["_ta1_1"].role == "ta"
    assert roster["_s0_1"].role == "student"
    assert (roster["_s0_1"].state, roster["_s1_1"].state, roster["_s2_1"].state) == (
        "active",
        "inactive",
        "dropped",
    )
    assert roster["_t1_1"].given_name == "Ada"
    assert roster["_t1_1"].email == "ada.lovelace@school.test"


def test_assignments_skip_calculated_columns(client: BlackboardClient, data: Dataset) -> None:
    assignments = list(client.list_assignments(bb_id("1")))

    assert [a.title for a in assignments] == ["Quiz 1"]
    assert assignments[0].external_id == quiz_id(data)
    assert assignments[0].points_possible == Decimal(100)
    assert assignments[0].due_at == WHEN


def test_grade_is_patched_once_even_when_sent_twice(
    client: BlackboardClient, data: Dataset, fake: FakeBlackboard
) -> None:
    submission = grade(column=quiz_id(data), comment="well done")

    first = client.submit_grade(submission)
    second = client.submit_grade(submission)

    assert not first.already_applied
    assert second.already_applied
    writes = data.api_writes()
    assert len(writes) == 1
    assert (writes[0].score, writes[0].comment) == (Decimal(85), "well done")
    assert len(fake.requests_to("/learn/api/public/v2/courses", "PATCH")) == 1


def test_lost_patch_response_is_rechecked_not_resent(
    fake: FakeBlackboard, data: Dataset, sleeps: list[float]
) -> None:
    config = ConnectionConfig(
        platform="blackboard",
        base_url=fake.base_url,
        credentials=Credentials(client_id=fake.app_key, client_secret=fake.app_secret),
        timeout_seconds=0.5,
    )
    with closing(BlackboardClient(config, sleep=sleeps.append)) as client:
        client.tokens.token()
        fake.delay_response(2.0, path="/learn/api/public/v2/courses", method="PATCH")

        outcome = client.submit_grade(grade(column=quiz_id(data)))

    assert outcome.already_applied
    assert len(fake.requests_to("/learn/api/public/v2/courses", "PATCH")) == 1
    assert len(data.api_writes()) == 1


def test_score_is_scaled_to_the_column_points(client: BlackboardClient, data: Dataset) -> None:
    client.submit_grade(grade("8.5", "10", column=quiz_id(data)))

    assert data.api_writes()[0].score == Decimal(85)


def test_a_rounded_scaled_score_counts_as_held(client: BlackboardClient, data: Dataset) -> None:
    submission = grade("2", "3", column=quiz_id(data))

    client.submit_grade(submission)

    assert client.submit_grade(submission).already_applied
    assert len(data.api_writes()) == 1


def test_organizations_are_not_courses(client: BlackboardClient, fake: FakeBlackboard) -> None:
    rows = [
        {"id": "_7_1", "name": "Chess club", "organization": True},
        {"id": "_8_1", "name": "Art"},
    ]
    fake.inject(Fault(reply=Reply.json({"results": rows}), match=lambda r: "/v3/courses" in r.path))

    assert [c.title for c in client.list_courses()] == ["Art"]


def test_a_disabled_course_is_not_listed_and_its_id_is_logged(
    client: BlackboardClient, fake: FakeBlackboard, caplog: pytest.LogCaptureFixture
) -> None:
    """Learn's ``Disabled`` (the SIS locked the course) was listed as a live course;
    a private (``No``) course and one that follows its term stay courses."""
    fake.availability.update({"2": "Disabled", "3": "No", "4": "Term", "5": "Disabled"})
    with caplog.at_level(logging.INFO, logger="lms.blackboard"):
        listed = [course.external_id for course in client.list_courses()]

    assert listed == ["_1_1", "_3_1", "_4_1"]
    assert [r.getMessage() for r in caplog.records if r.name == "lms.blackboard"] == [
        "Blackboard course _2_1 is disabled in Learn; not synced",
        "Blackboard course _5_1 is disabled in Learn; not synced",
    ]
    assert {r.levelno for r in caplog.records if r.name == "lms.blackboard"} == {logging.INFO}


def test_token_expiring_mid_paging_is_renewed_once(
    client: BlackboardClient, fake: FakeBlackboard
) -> None:
    courses = client.list_courses()
    first = next(courses)
    fake.expire_all_tokens()
    rest = list(courses)

    assert len([first, *rest]) == 5
    assert fake.unauthorized == 1
    assert len(fake.token_requests()) == 2


def test_token_is_renewed_before_it_expires(fake: FakeBlackboard, sleeps: list[float]) -> None:
    clock = Clock()
    with closing(make_client(fake, sleeps, clock=clock)) as client:
        courses = client.list_courses()
        next(courses)
        clock.now += 3600  # the cached token is past its renewal point
        assert len(list(courses)) == 4

    assert len(fake.token_requests()) == 2
    assert fake.unauthorized == 0


def test_invalid_client_is_rejected_without_leaking_the_secret(
    fake: FakeBlackboard, sleeps: list[float]
) -> None:
    wrong = "not-the-secret-123"
    with closing(make_client(fake, sleeps, secret=wrong)) as client:
        with pytest.raises(LMSRequestRejected) as caught:
            list(client.list_courses())
        assert caught.value.status_code == 401
        assert "invalid_client" in str(caught.value)
        for text in (str(caught.value), repr(caught.value), repr(client.tokens), repr(client)):
            assert wrong not in text


def test_throttling_honours_retry_after(
    client: BlackboardClient, fake: FakeBlackboard, sleeps: list[float]
) -> None:
    fake.throttle(times=3, retry_after="2", path="/learn/api/public/v3/courses")

    assert len(list(client.list_courses())) == 5
    assert sleeps[:3] == [2.0, 2.0, 2.0]


def test_server_error_storm_ends_in_unavailable(fake: FakeBlackboard, sleeps: list[float]) -> None:
    fake.server_errors(times=50, status=503, path="/learn/api/public/v3/courses")
    with closing(make_client(fake, sleeps, max_retries=3)) as client:
        with pytest.raises(LMSUnavailable):
            list(client.list_courses())
    assert len(fake.requests_to("/learn/api/public/v3/courses")) == 4


def test_token_endpoint_outage_is_retried(client: BlackboardClient, fake: FakeBlackboard) -> None:
    fake.server_errors(times=2, status=502, path="/learn/api/public/v1/oauth2/token")

    assert len(list(client.list_courses())) == 5
    assert len(fake.token_requests()) == 3


def test_malformed_json_is_validation_failed(
    client: BlackboardClient, fake: FakeBlackboard
) -> None:
    fake.malformed_json(path="/learn/api/public/v3/courses")

    with pytest.raises(ValidationFailed):
        list(client.list_courses())


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"paging": {}}, "results"),
        ({"results": [{"id": "_9_1"}]}, "name"),
        ({"results": ["not an object"]}, "results[]"),
    ],
)
def test_malformed_pages_name_the_field(
    client: BlackboardClient, fake: FakeBlackboard, body: object, named: str
) -> None:
    fake.inject(Fault(reply=Reply.json(body), match=lambda r: r.path.endswith("/v3/courses")))

    with pytest.raises(ValidationFailed, match=re.escape(named)):
        list(client.list_courses())


def test_grade_for_unknown_column_is_rejected(client: BlackboardClient) -> None:
    with pytest.raises(LMSRequestRejected) as caught:
        client.submit_grade(grade(column="_404_1"))
    assert caught.value.status_code == 404


def test_a_base_url_with_a_path_keeps_it_for_the_token_request(
    fake: FakeBlackboard, sleeps: list[float]
) -> None:
    """Learn behind a path prefix: the token URL used to drop it (urljoin of an absolute path)."""
    fake.mount = "/bb"
    with closing(make_client(fake, sleeps)) as bb:
        courses = list(bb.list_courses())  # three pages: nextPage stays under the prefix too
    assert len(courses) == 5
    assert len(fake.requests_to("/learn/api/public/v1/oauth2/token", "POST")) == 1
