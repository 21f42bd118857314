"""LTIAdvantageClient against a fake LTI 1.3 platform over real HTTP."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lms.base import ConnectionConfig, Credentials, GradeSubmission
from lms.lti import LINEITEMS_MEDIA_TYPE, LTIAdvantageClient, map_roles, scores_url
from models.errors import (
    ConfigurationError,
    LMSRequestRejected,
    LMSUnavailable,
    ToolboxError,
    ValidationFailed,
)
from tests.lms.fakes.dataset import Dataset
from tests.lms.fakes.lti import LIS, FakeLTIPlatform, StaleMode
from tests.lms.fakes.server import Fault, Reply

T1 = dt.datetime(2026, 3, 2, 14, 30, 5, 250000, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(minutes=20)


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def tool_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def data() -> Dataset:
    data = Dataset()
    data.add_course("Chemistry", id="ctx1", code="CHEM")
    data.add_course("Physics", id="ctx2", code="PHYS")
    data.enroll("ctx1", data.add_user("Marie", "Curie", id="u-teacher").id, "teacher")
    data.enroll("ctx1", data.add_user("Tim", "Helper", id="u-ta").id, "ta")
    data.enroll("ctx1", data.add_user("Mum", "Curie", id="u-mentor").id, "observer")
    for seat, state in enumerate(("active", "active", "inactive", "deleted")):
        data.enroll("ctx1", data.add_user(f"Kid{seat}", "Doe", id=f"u{seat}").id, state=state)
    data.add_assignment("ctx1", "Titration quiz", points_possible=20, due_at=T2)
    data.add_assignment("ctx1", "Lab report", points_possible=50)
    data.add_assignment("ctx1", "Final", points_possible=100)
    return data


@pytest.fixture
def fake(data: Dataset, tool_key: rsa.RSAPrivateKey) -> Iterator[FakeLTIPlatform]:
    with FakeLTIPlatform(data, tool_public_key=tool_key.public_key(), page_size=2) as server:
        yield server


def make_client(
    fake: FakeLTIPlatform,
    key: rsa.RSAPrivateKey,
    *,
    timeout: float = 30.0,
    max_retries: int = 5,
    **options: Any,
) -> LTIAdvantageClient:
    config = ConnectionConfig(
        platform="lti",
        base_url=fake.base_url,
        credentials=Credentials(client_id=fake.client_id, private_key_pem=pem(key)),
        token_endpoint=fake.token_url,
        options={"contexts": fake.context_options(), "key_id": "tool-key-1", **options},
        timeout_seconds=timeout,
        max_retries=max_retries,
    )
    return LTIAdvantageClient(config, sleep=lambda _: None)


@pytest.fixture
def client(fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey) -> Iterator[LTIAdvantageClient]:
    with closing(make_client(fake, tool_key)) as lti:
        yield lti


def lineitem(fake: FakeLTIPlatform, data: Dataset, title: str = "Titration quiz") -> str:
    assignment = next(a for a in data.assignments.values() if a.title == title)
    return fake.lineitem_url(assignment)


def held(data: Dataset, user: str = "u0") -> Decimal | None:
    """The score the platform holds for the first line item."""
    state = data.grade(next(iter(data.assignments)), user)
    return None if state is None else state.score


def score(
    item: str, when: dt.datetime = T1, value: str = "15", user: str = "u0"
) -> GradeSubmission:
    return GradeSubmission(
        course_external_id="ctx1",
        assignment_external_id=item,
        external_user_id=user,
        score=Decimal(value),
        points_possible=Decimal(20),
        timestamp=when,
        sourced_id=f"pb-{user}-{when.isoformat()}",
    )


def test_courses_come_from_configured_contexts(
    client: LTIAdvantageClient, fake: FakeLTIPlatform
) -> None:
    courses = list(client.list_courses())

    assert [(c.external_id, c.title) for c in courses] == [
        ("ctx1", "Chemistry"),
        ("ctx2", "Physics"),
    ]
    assert fake.requests == []  # LTI has no course listing call


def test_roster_follows_link_paging_with_one_verified_token(
    client: LTIAdvantageClient, fake: FakeLTIPlatform
) -> None:
    roster = {e.external_user_id: e for e in client.list_roster("ctx1")}

    assert roster["u-teacher"].role == "teacher"
    assert roster["u-ta"].role == "ta"
    assert roster["u-mentor"].role == "observer"
    assert roster["u0"].role == "student"
    assert [roster[u].state for u in ("u0", "u2", "u3")] == ["active", "inactive", "dropped"]
    assert (roster["u0"].given_name, roster["u0"].email) == ("Kid0", "kid0.doe@school.test")
    pages = fake.requests_to("/lti/contexts/ctx1/memberships")
    assert len(pages) == 4
    assert all("membershipcontainer+json" in p.headers["accept"] for p in pages)
    assert len(fake.token_requests()) == 1


def test_next_link_to_another_host_is_refused_without_sending_the_token(
    client: LTIAdvantageClient, fake: FakeLTIPlatform
) -> None:
    fake.link_base = fake.other_host()
    with pytest.raises(ValidationFailed, match=r"rel=\"next\" points to another host"):
        list(client.list_roster("ctx1"))
    assert fake.requests_from_other_host() == []


def test_token_request_carries_a_signed_assertion(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey
) -> None:
    list(client.list_assignments("ctx1"))
    client.tokens.invalidate()
    list(client.list_assignments("ctx1"))

    forms = [r.form() for r in fake.token_requests()]
    assert len(forms) == 2
    assertions = [f["client_assertion"][0] for f in forms]
    claims = [
        jwt.decode(a, tool_key.public_key(), algorithms=["RS256"], audience=fake.token_url)
        for a in assertions
    ]
    assert {c["iss"] for c in claims} == {c["sub"] for c in claims} == {fake.client_id}
    assert claims[0]["jti"] != claims[1]["jti"]
    assert jwt.get_unverified_header(assertions[0])["kid"] == "tool-key-1"
    assert forms[0]["client_assertion_type"] == [
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    ]
    scopes = set(forms[0]["scope"][0].split())
    assert "https://purl.imsglobal.org/spec/lti-ags/scope/score" in scopes
    assert "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly" in scopes


def test_line_items_are_assignments(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, data: Dataset
) -> None:
    items = list(client.list_assignments("ctx1"))

    assert [i.title for i in items] == ["Titration quiz", "Lab report", "Final"]
    assert items[0].external_id == lineitem(fake, data)
    assert items[0].points_possible == Decimal(20)
    assert items[0].due_at == T2
    assert len(fake.requests_to("/lti/contexts/ctx1/lineitems")) == 2


def test_a_line_item_on_another_host_is_refused(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, data: Dataset
) -> None:
    """A line item's id is where its scores go, with the access token: one naming another
    host than its container is refused, as a next-page link to another host is."""
    item = {"id": lineitem(fake, data).replace(fake.base_url, fake.other_host()),
            "label": "Elsewhere", "scoreMaximum": 10}  # fmt: skip
    container = Reply(200, [item], {"Content-Type": LINEITEMS_MEDIA_TYPE})
    fake.inject(Fault(reply=container, match=lambda r: r.path.endswith("/lineitems")))
    with pytest.raises(ValidationFailed, match="is on another host than its container"):
        list(client.list_assignments("ctx1"))


def test_score_is_posted_with_the_fixed_timestamp(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, data: Dataset
) -> None:
    item = lineitem(fake, data)

    outcome = client.submit_grade(score(item))

    assert not outcome.already_applied
    (posted,) = fake.requests_to("/lti/contexts/ctx1/lineitems", "POST")
    assert posted.path.endswith("/scores")
    assert posted.headers["content-type"] == "application/vnd.ims.lis.v1.score+json"
    assert posted.json() == {
        "userId": "u0",
        "scoreGiven": 15,
        "scoreMaximum": 20,
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
        "timestamp": "2026-03-02T14:30:05.250000+00:00",
    }
    assert held(data) == Decimal(15)


def test_a_timestamp_on_a_whole_second_still_carries_sub_seconds(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, data: Dataset
) -> None:
    outcome = client.submit_grade(score(lineitem(fake, data), when=T1.replace(microsecond=0)))

    assert not outcome.already_applied
    (posted,) = fake.requests_to("/lti/contexts/ctx1/lineitems", "POST")
    assert posted.json()["timestamp"] == "2026-03-02T14:30:05.000000+00:00"
    assert held(data) == Decimal(15)


def test_a_timestamp_refused_for_another_reason_is_not_taken_as_applied(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, data: Dataset
) -> None:
    """A 400 naming the timestamp counted as "a newer grade is there": the grade was lost."""
    fake.future_after = T1 - dt.timedelta(days=1)
    with pytest.raises(LMSRequestRejected, match="in the future"):
        client.submit_grade(score(lineitem(fake, data)))
    assert held(data) is None


@pytest.mark.parametrize("mode", ["409", "400", "canvas"])
def test_same_timestamp_twice_is_applied_once(
    fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey, data: Dataset, mode: StaleMode
) -> None:
    fake.stale_mode = mode
    with closing(make_client(fake, tool_key)) as client:
        first = client.submit_grade(score(lineitem(fake, data)))
        again = client.submit_grade(score(lineitem(fake, data)))

    assert (first.already_applied, again.already_applied) == (False, True)
    assert len(fake.applied_scores) == 1
    assert len(data.api_writes()) == 1


def test_older_score_after_newer_is_not_applied(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, data: Dataset
) -> None:
    item = lineitem(fake, data)
    client.submit_grade(score(item, T2, "18"))

    outcome = client.submit_grade(score(item, T1, "9"))

    assert outcome.already_applied
    assert held(data) == Decimal(18)
    timestamps = [r.json()["timestamp"] for r in fake.requests_to("/lti/contexts", "POST")]
    assert timestamps == [T2.isoformat(), T1.isoformat()]  # never "fixed" by a newer timestamp


def test_platform_that_ignores_stale_scores_keeps_the_newer_one(
    fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey, data: Dataset
) -> None:
    fake.stale_mode = "ignore"
    with closing(make_client(fake, tool_key)) as client:
        client.submit_grade(score(lineitem(fake, data), T2, "18"))
        outcome = client.submit_grade(score(lineitem(fake, data), T1, "9"))

    assert not outcome.already_applied  # a silent 2xx cannot be told apart
    assert len(fake.refused_scores) == 1
    assert [w.score for w in data.api_writes()] == [Decimal(18)]


def test_lost_response_is_retried_and_applied_exactly_once(
    fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey, data: Dataset
) -> None:
    with closing(make_client(fake, tool_key, timeout=0.5)) as client:
        client.tokens.token()  # so only the score POST meets the delay
        fake.delay_response(2.0, path="/lti/contexts/ctx1/lineitems", method="POST")

        outcome = client.submit_grade(score(lineitem(fake, data)))

    assert outcome.already_applied  # the retry met the score the lost response had applied
    assert len(fake.applied_scores) == 1
    assert len(fake.requests_to("/lti/contexts", "POST")) == 2


def test_score_throttling_and_server_errors_are_retried(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, data: Dataset
) -> None:
    fake.throttle(2, retry_after="1", path="/lti/contexts/ctx1/lineitems")
    fake.server_errors(2, status=500, path="/lti/contexts/ctx1/lineitems")

    assert not client.submit_grade(score(lineitem(fake, data))).already_applied
    assert len(fake.applied_scores) == 1


def test_server_error_storm_is_unavailable(
    fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey
) -> None:
    fake.server_errors(100, status=503, path="/lti/contexts/ctx1/memberships")
    with (
        closing(make_client(fake, tool_key, max_retries=2)) as client,
        pytest.raises(LMSUnavailable),
    ):
        list(client.list_roster("ctx1"))


def test_token_expiring_mid_paging_is_renewed(
    client: LTIAdvantageClient, fake: FakeLTIPlatform
) -> None:
    roster = client.list_roster("ctx1")
    first = next(roster)
    fake.expire_all_tokens()

    assert len([first, *roster]) == 7
    assert fake.unauthorized == 1
    assert len(fake.token_requests()) == 2


@pytest.mark.parametrize("kid", ["other-key", None])
def test_unknown_kid_is_invalid_client(
    fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey, kid: str | None
) -> None:
    with closing(make_client(fake, tool_key, key_id=kid)) as client:
        with pytest.raises(LMSRequestRejected, match="invalid_client") as caught:
            list(client.list_roster("ctx1"))
    assert caught.value.status_code == 401


def test_wrong_key_is_rejected_without_leaking_key_or_assertion(
    fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey
) -> None:
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with closing(make_client(fake, stranger)) as client:
        with pytest.raises(LMSRequestRejected, match="invalid_client") as caught:
            list(client.list_roster("ctx1"))
        texts = [str(caught.value), repr(caught.value), repr(client.tokens), repr(client.config)]
    assertion = fake.token_requests()[0].form()["client_assertion"][0]
    for text in texts:
        assert "PRIVATE KEY" not in text
        assert pem(stranger)[40:80] not in text
        assert assertion not in text


def test_no_token_or_key_in_errors(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey
) -> None:
    errors: list[ToolboxError] = []
    fake.server_errors(100, status=502, path="/lti/contexts/ctx1/memberships")
    with pytest.raises(LMSUnavailable) as unavailable:
        list(client.list_roster("ctx1"))
    errors.append(unavailable.value)
    with pytest.raises(LMSRequestRejected) as rejected:
        client.submit_grade(score(f"{fake.base_url}/lti/contexts/ctx1/lineitems/nope"))
    errors.append(rejected.value)
    token = client.tokens.token()
    for text in [*(str(e) for e in errors), *(repr(e) for e in errors), repr(client.tokens)]:
        assert token not in text
        assert pem(tool_key)[40:80] not in text


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/memberships", {"context": {}}, "members"),
        ("/memberships", {"members": [{"roles": []}]}, "user_id"),
        ("/lineitems", [{"label": "x"}], "'id'"),
        ("/lineitems", {"not": "a list"}, "not a list"),
        ("/lineitems", [{"id": "li", "label": "x", "scoreMaximum": float("nan")}], "got nan"),
        ("/lineitems", [{"id": "li", "label": "x", "scoreMaximum": float("inf")}], "got inf"),
        ("/lineitems", [{"id": "li", "label": "x", "scoreMaximum": "twenty"}], "twenty"),
    ],
)
def test_malformed_service_responses(
    client: LTIAdvantageClient, fake: FakeLTIPlatform, path: str, body: Any, named: str
) -> None:
    fake.inject(Fault(reply=Reply.json(body), match=lambda r: r.path.endswith(path)))

    with pytest.raises(ValidationFailed, match=named):
        if path == "/memberships":
            list(client.list_roster("ctx1"))
        else:
            list(client.list_assignments("ctx1"))


def test_configuration_errors_name_the_missing_setting(
    fake: FakeLTIPlatform, tool_key: rsa.RSAPrivateKey
) -> None:
    base: dict[str, Any] = {
        "platform": "lti",
        "base_url": fake.base_url,
        "token_endpoint": fake.token_url,
    }
    key = Credentials(client_id="c", private_key_pem=pem(tool_key))
    with pytest.raises(ConfigurationError, match=r"options\.contexts"):
        LTIAdvantageClient(ConnectionConfig(credentials=key, **base))
    with pytest.raises(ConfigurationError, match="private_key_pem"):
        LTIAdvantageClient(
            ConnectionConfig(
                credentials=Credentials(client_id="c"),
                options={"contexts": [{"id": "x", "memberships_url": fake.base_url}]},
                **base,
            )
        )
    with closing(make_client(fake, tool_key)) as client:
        with pytest.raises(ConfigurationError, match="no context"):
            list(client.list_roster("unknown"))


def test_scores_url_keeps_the_query_string() -> None:
    assert scores_url("https://lms/li/7?type=q") == "https://lms/li/7/scores?type=q"
    assert scores_url("https://lms/li/7/") == "https://lms/li/7/scores"


def test_role_mapping_prefers_the_most_specific_course_role() -> None:
    institution = "http://purl.imsglobal.org/vocab/lis/v2/institution/person#"
    assert map_roles([f"{LIS}#Instructor", f"{LIS}/Instructor#TeachingAssistant"]) == "ta"
    assert map_roles([f"{LIS}#Learner", f"{institution}Student"]) == "student"
    assert map_roles([f"{institution}Administrator"]) == "admin"
    assert map_roles(["Instructor"]) == "teacher"
    assert map_roles([f"{institution}Faculty"]) is None


def test_institution_and_system_roles_are_no_course_roles() -> None:
    """A teacher of the school who is a learner in this course is a student here, however
    the platform spells the institution role (LIS v2, or LTI 1.1's URNs, which Canvas
    sends: ``urn:lti:instrole:ims/lis/Instructor`` for any teacher of the account)."""
    system = "http://purl.imsglobal.org/vocab/lis/v2/system/person#"
    learner = [f"{LIS}#Learner", "urn:lti:role:ims/lis/Learner"]
    assert map_roles([*learner, "urn:lti:instrole:ims/lis/Instructor"]) == "student"
    assert map_roles([*learner, "urn:lti:sysrole:ims/lis/Instructor"]) == "student"
    assert map_roles([*learner, f"{system}Instructor"]) == "student"
    assert map_roles(["urn:lti:instrole:ims/lis/Mentor"]) is None
    assert map_roles(["urn:lti:role:ims/lis/TeachingAssistant"]) == "ta"
    assert map_roles(["urn:lti:instrole:ims/lis/Administrator"]) == "admin"
    assert map_roles([f"{system}Administrator"]) == "admin"
