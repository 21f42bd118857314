"""OneRosterClient against a fake OneRoster 1.2 provider, checked against the spec.

Every response the fake sent and every result body the client PUT is
validated: Rostering against the official OpenAPI document, Gradebook against
schemas transcribed below from the OneRoster 1.2 Gradebook REST binding (its
OpenAPI file is not among the shared specs).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import closing
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry
from referencing.jsonschema import DRAFT4

from lms.base import ConnectionConfig, Credentials, GradeSubmission
from lms.oneroster import OneRosterClient
from models.errors import ConfigurationError, LMSRequestRejected, LMSUnavailable, ValidationFailed
from tests.lms.fakes.dataset import Dataset
from tests.lms.fakes.oneroster import GRADEBOOK, ROSTERING, FakeOneRoster
from tests.lms.fakes.server import Fault, RecordedRequest, Reply

SPEC_PATH = (
    Path(__file__).resolve().parents[2] / "docs/specs/oneroster-v1p2-rostering-openapi3.json"
)
ROSTER_URI = "urn:oneroster:v1p2:rostering"
GRADEBOOK_URI = "urn:oneroster:v1p2:gradebook"
T0 = dt.datetime(2026, 2, 1, 9, 0, tzinfo=dt.UTC)
T1 = dt.datetime(2026, 3, 2, 14, 30, 5, tzinfo=dt.UTC)
T2 = T1 + dt.timedelta(hours=2)


def _roster_ref(name: str) -> dict[str, str]:
    return {"$ref": f"{ROSTER_URI}#/components/schemas/{name}"}


def _guid_ref(kind: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {
            "href": {"type": "string", "format": "uri"},
            "sourcedId": {"type": "string"},
            "type": {"type": "string", "enum": [kind]},
        },
        "required": ["href", "sourcedId", "type"],
        "additionalProperties": False,
    }


_STATUS = {"type": "string", "enum": ["active", "tobedeleted"]}
_DATETIME = {"type": "string", "format": "date-time"}
# scoreDate is typed Date in parts of the 1.2 binding; a date-time is what
# makes the "never older over newer" comparison exact, so both are accepted.
_SCORE_DATE = {"anyOf": [{"type": "string", "format": "date"}, _DATETIME]}
GRADEBOOK_SCHEMAS: dict[str, Any] = {
    "LineItemDType": {
        "type": "object",
        "properties": {
            "sourcedId": {"type": "string"},
            "status": _STATUS,
            "dateLastModified": _DATETIME,
            "metadata": {"type": "object"},
            "title": {"type": "string"},
            "description": {"type": "string"},
            "assignDate": _DATETIME,
            "dueDate": _DATETIME,
            "class": _roster_ref("ClassGUIDRefDType"),
            "school": _roster_ref("OrgGUIDRefDType"),
            "category": _guid_ref("category"),
            "gradingPeriod": _guid_ref("academicSession"),
            "academicSession": _guid_ref("academicSession"),
            "scoreScale": _guid_ref("scoreScale"),
            "resultValueMin": {"type": "number"},
            "resultValueMax": {"type": "number"},
            "learningObjectiveSet": {"type": "array"},
        },
        "required": [
            "sourcedId",
            "status",
            "dateLastModified",
            "title",
            "assignDate",
            "dueDate",
            "class",
            "school",
            "category",
        ],
        "additionalProperties": False,
    },
    "ResultDType": {
        "type": "object",
        "properties": {
            "sourcedId": {"type": "string"},
            "status": _STATUS,
            "dateLastModified": _DATETIME,
            "metadata": {"type": "object"},
            "lineItem": _guid_ref("lineItem"),
            "student": _roster_ref("UserGUIDRefDType"),
            "class": _roster_ref("ClassGUIDRefDType"),
            "scoreScale": _guid_ref("scoreScale"),
            "scoreStatus": {
                "type": "string",
                "enum": [
                    "exempt",
                    "fully graded",
                    "not submitted",
                    "partially graded",
                    "submitted",
                ],
            },
            "score": {"type": "number"},
            "textScore": {"type": "string"},
            "scoreDate": _SCORE_DATE,
            "comment": {"type": "string"},
            "learningObjectiveSet": {"type": "array"},
            "inProgress": {"type": "string", "enum": ["true", "false"]},
            "incomplete": {"type": "string", "enum": ["true", "false"]},
            "late": {"type": "string", "enum": ["true", "false"]},
            "missing": {"type": "string", "enum": ["true", "false"]},
        },
        "required": [
            "sourcedId",
            "status",
            "dateLastModified",
            "lineItem",
            "student",
            "scoreStatus",
            "scoreDate",
        ],
        "additionalProperties": False,
    },
}
for _name, _key in (("LineItem", "lineItem"), ("Result", "result")):
    _item = {"$ref": f"#/components/schemas/{_name}DType"}
    GRADEBOOK_SCHEMAS[f"{_name}SetDType"] = {
        "type": "object",
        "properties": {f"{_key}s": {"type": "array", "items": _item}},
        "additionalProperties": False,
    }
    GRADEBOOK_SCHEMAS[f"Single{_name}DType"] = {
        "type": "object",
        "properties": {_key: _item},
        "required": [_key],
        "additionalProperties": False,
    }
GRADEBOOK_RESPONSES = [
    ("GET", r"/classes/[^/]+/lineItems", "LineItemSetDType"),
    ("GET", r"/lineItems/[^/]+", "SingleLineItemDType"),
    ("GET", r"/results", "ResultSetDType"),
    ("GET", r"/results/[^/]+", "SingleResultDType"),
    ("PUT", r"/results/[^/]+", "SingleResultDType"),
]

FORMATS = FormatChecker(formats=())


@FORMATS.checks("date-time", raises=ValueError)
def _is_datetime(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return (
        "T" in value and dt.datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None
    )


@FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    if not isinstance(value, str):
        return True
    return re.fullmatch(r"\d{4}-\d{2}-\d{2}", value) is not None and bool(
        dt.date.fromisoformat(value)
    )


@FORMATS.checks("uri")
def _is_uri(value: object) -> bool:
    return not isinstance(value, str) or bool(urlsplit(value).scheme and urlsplit(value).netloc)


class OneRosterSpec:
    """Validators for the official Rostering document and the Gradebook transcription."""

    def __init__(self, rostering: dict[str, Any]) -> None:
        self.rostering = rostering
        gradebook = {"components": {"schemas": GRADEBOOK_SCHEMAS}}
        self.registry: Registry[Any] = Registry().with_resources(
            [
                (ROSTER_URI, DRAFT4.create_resource(rostering)),
                (GRADEBOOK_URI, DRAFT4.create_resource(gradebook)),
            ]
        )
        self.paths = [
            (re.compile(re.sub(r"\{[^}]+\}", "[^/]+", template)), template)
            for template in rostering["paths"]
        ]

    def errors(self, uri: str, instance: Any) -> list[str]:
        validator = Draft4Validator({"$ref": uri}, registry=self.registry, format_checker=FORMATS)
        return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(instance)]

    def response_schema(self, method: str, path: str, status: int) -> str:
        if path.startswith(GRADEBOOK):
            local = path.removeprefix(GRADEBOOK)
            if status >= 400:
                return f"{ROSTER_URI}#/components/schemas/imsx_StatusInfoDType"
            for verb, pattern, name in GRADEBOOK_RESPONSES:
                if verb == method and re.fullmatch(pattern, local):
                    return f"{GRADEBOOK_URI}#/components/schemas/{name}"
            raise AssertionError(f"no gradebook schema for {method} {path}")
        local = path.removeprefix(ROSTERING)
        template = next(t for pattern, t in self.paths if pattern.fullmatch(local))
        responses = self.rostering["paths"][template][method.lower()]["responses"]
        response = responses.get(str(status), responses["default"])
        return str(response["content"]["application/json"]["schema"]["$ref"]).replace(
            "#", f"{ROSTER_URI}#", 1
        )

    def check_exchanges(self, fake: FakeOneRoster) -> int:
        """Validate every response and request body the fake handled; returns how many."""
        problems: list[str] = []
        checked = 0
        for exchange in fake.exchanges:
            request, reply = exchange.request, exchange.reply
            if not request.path.startswith("/ims/"):
                continue  # the token endpoint is OAuth2, not OneRoster
            uri = self.response_schema(request.method, request.path, reply.status)
            problems += [f"{request.path}: {e}" for e in self.errors(uri, reply.body)]
            if request.method == "PUT":
                body_uri = f"{GRADEBOOK_URI}#/components/schemas/SingleResultDType"
                problems += [f"PUT body {e}" for e in self.errors(body_uri, request.json())]
            if uri.endswith("SetDType") and "X-Total-Count" not in reply.headers:
                problems.append(f"{request.path}: no X-Total-Count header")
            checked += 1
        assert problems == []
        return checked


@pytest.fixture(scope="module")
def spec() -> OneRosterSpec:
    return OneRosterSpec(json.loads(SPEC_PATH.read_text()))


@pytest.fixture
def data() -> Dataset:
    data = Dataset()
    for number in range(1, 6):
        data.add_course(f"Algebra {number}", id=f"cls-{number}", code=f"ALG-{number}")
    data.enroll("cls-1", data.add_user("Emmy", "Noether", id="t1").id, "teacher")
    data.enroll("cls-1", data.add_user("Alan", "Aide", id="ta1").id, "ta")
    data.enroll("cls-1", data.add_user("Pat", "Parent", id="p1").id, "observer")
    for seat, state in enumerate(("active", "active", "invited", "completed", "deleted")):
        data.enroll("cls-1", data.add_user(f"Kid{seat}", "Gauss", id=f"s{seat}").id, state=state)
    data.add_assignment("cls-1", "Fractions quiz", points_possible=100, due_at=T2)
    data.add_assignment("cls-1", "Homework 1", points_possible=10)
    return data


@pytest.fixture
def fake(data: Dataset) -> Iterator[FakeOneRoster]:
    with FakeOneRoster(data, page_size=2) as server:
        yield server


def make_client(
    fake: FakeOneRoster,
    *,
    secret: str | None = None,
    timeout: float = 30.0,
    max_retries: int = 5,
    **options: Any,
) -> OneRosterClient:
    config = ConnectionConfig(
        platform="oneroster",
        base_url=fake.base_url,
        credentials=Credentials(
            client_id=fake.client_id, client_secret=secret or fake.client_secret
        ),
        token_endpoint=fake.token_url,
        options=options,
        timeout_seconds=timeout,
        max_retries=max_retries,
    )
    return OneRosterClient(config, sleep=lambda _: None)


@pytest.fixture
def client(fake: FakeOneRoster) -> Iterator[OneRosterClient]:
    with closing(make_client(fake)) as oneroster:
        yield oneroster


def quiz(data: Dataset, title: str = "Fractions quiz") -> str:
    return next(a.id for a in data.assignments.values() if a.title == title)


def grade(
    item: str, when: dt.datetime = T1, value: str = "85", points: str = "100", user: str = "s0"
) -> GradeSubmission:
    return GradeSubmission(
        course_external_id="cls-1",
        assignment_external_id=item,
        external_user_id=user,
        score=Decimal(value),
        points_possible=Decimal(points),
        timestamp=when,
        sourced_id=f"toolbox-{item}-{user}-{int(when.timestamp())}",
    )


def test_classes_are_courses_paged_by_total_count(
    client: OneRosterClient, fake: FakeOneRoster, spec: OneRosterSpec
) -> None:
    fake.deleted.add("cls-5")

    courses = list(client.list_courses())

    assert [c.external_id for c in courses] == ["cls-1", "cls-2", "cls-3", "cls-4"]
    assert courses[0].title == "Algebra 1"
    pages = fake.requests_to(f"{ROSTERING}/classes")
    assert [p.arg("offset") for p in pages] == ["0", "2", "4"]
    assert len(fake.token_requests()) == 1
    assert spec.check_exchanges(fake) == 3


def test_roster_joins_enrollments_and_users(
    client: OneRosterClient, fake: FakeOneRoster, spec: OneRosterSpec
) -> None:
    roster = {e.external_user_id: e for e in client.list_roster("cls-1")}

    assert roster["t1"].role == "teacher"
    assert roster["ta1"].role == "teacher"  # OneRoster has no TA role: a non-primary teacher
    assert roster["p1"].role == "observer"  # ext:observer
    assert [roster[s].state for s in ("s0", "s2", "s3", "s4")] == [
        "active",
        "inactive",
        "completed",
        "dropped",
    ]
    assert (roster["s0"].given_name, roster["s0"].email) == ("Kid0", "kid0.gauss@school.test")
    assert roster["p1"].family_name == "Parent"  # fetched one by one: not a student or teacher
    (first, *_) = fake.requests_to(f"{ROSTERING}/enrollments")
    assert first.arg("filter") == "class.sourcedId='cls-1'"
    fetched = {r.path.rsplit("/", 1)[-1] for r in fake.requests_to(f"{ROSTERING}/users/")}
    assert fetched == {"p1", "s4"}  # neither listed as a class student nor a teacher
    spec.check_exchanges(fake)


def test_line_items_are_assignments(
    client: OneRosterClient, fake: FakeOneRoster, data: Dataset, spec: OneRosterSpec
) -> None:
    items = list(client.list_assignments("cls-1"))

    assert [(i.external_id, i.title) for i in items] == [
        (quiz(data), "Fractions quiz"),
        (quiz(data, "Homework 1"), "Homework 1"),
    ]
    assert items[0].points_possible == Decimal(100)
    assert items[0].due_at == T2
    spec.check_exchanges(fake)


def test_result_is_put_once_at_its_sourced_id(
    client: OneRosterClient, fake: FakeOneRoster, data: Dataset, spec: OneRosterSpec
) -> None:
    submission = grade(quiz(data))

    first = client.submit_grade(submission)
    second = client.submit_grade(submission)

    assert (first.already_applied, second.already_applied) == (False, True)
    (put,) = fake.requests_to(f"{GRADEBOOK}/results/", "PUT")
    assert put.path == f"{GRADEBOOK}/results/{submission.sourced_id}"
    body = put.json()["result"]
    assert body["scoreDate"] == "2026-03-02T14:30:05+00:00"
    assert (body["score"], body["scoreStatus"]) == (85, "fully graded")
    assert [w.score for w in data.api_writes()] == [Decimal(85)]
    spec.check_exchanges(fake)


def test_older_result_never_replaces_a_newer_one(
    client: OneRosterClient, fake: FakeOneRoster, data: Dataset
) -> None:
    client.submit_grade(grade(quiz(data), T2, "90"))

    outcome = client.submit_grade(grade(quiz(data), T1, "40"))

    assert outcome.already_applied
    assert [w.score for w in data.api_writes()] == [Decimal(90)]
    assert fake.stale_overwrites == []


def test_newer_grade_entered_by_a_teacher_is_kept(
    client: OneRosterClient, fake: FakeOneRoster, data: Dataset
) -> None:
    fake.add_result(quiz(data), "s0", 70, T2, "teacher-entered")

    assert client.submit_grade(grade(quiz(data), T1)).already_applied
    assert data.api_writes() == []


def test_older_result_is_superseded(
    client: OneRosterClient, fake: FakeOneRoster, data: Dataset, spec: OneRosterSpec
) -> None:
    fake.add_result(quiz(data), "s0", 10, T0, "earlier")

    assert not client.submit_grade(grade(quiz(data), T1)).already_applied
    assert [w.score for w in data.api_writes()] == [Decimal(85)]
    assert fake.stale_overwrites == []
    spec.check_exchanges(fake)


def test_score_is_scaled_to_the_line_item(
    client: OneRosterClient, fake: FakeOneRoster, data: Dataset
) -> None:
    client.submit_grade(grade(quiz(data), value="8.5", points="10"))

    assert data.api_writes()[0].score == Decimal(85)


def test_lost_put_response_is_rechecked_not_rewritten(
    fake: FakeOneRoster, data: Dataset, spec: OneRosterSpec
) -> None:
    with closing(make_client(fake, timeout=0.5)) as client:
        client.tokens.token()
        fake.delay_response(2.0, path=f"{GRADEBOOK}/results/", method="PUT")

        outcome = client.submit_grade(grade(quiz(data)))

    assert outcome.already_applied  # the re-check found the result the lost answer hid
    assert len(fake.requests_to(f"{GRADEBOOK}/results/", "PUT")) == 1
    assert list(fake.results) == [grade(quiz(data)).sourced_id]
    assert len(data.api_writes()) == 1
    spec.check_exchanges(fake)


def test_token_expiring_mid_paging_is_renewed(client: OneRosterClient, fake: FakeOneRoster) -> None:
    courses = client.list_courses()
    first = next(courses)
    fake.expire_all_tokens()

    assert len([first, *courses]) == 5
    assert fake.unauthorized == 1
    assert len(fake.token_requests()) == 2


class OffsetBlindOneRoster(FakeOneRoster):
    """A provider that ignores ``offset`` (every page is the first) and counts 100000."""

    def _collection(self, request: RecordedRequest, key: str, items: list[dict[str, Any]]) -> Reply:
        reply = super()._collection(request.without({"offset"}), key, items)
        reply.headers["X-Total-Count"] = "100000"
        return reply


def test_a_provider_ignoring_offset_is_refused_at_the_first_repeated_page(data: Dataset) -> None:
    """It walked offset=0,2,4,... 861 requests in 40 s, reading the first page each time."""
    with OffsetBlindOneRoster(data, page_size=2) as blind, closing(make_client(blind)) as client:
        with pytest.raises(ValidationFailed) as caught:
            list(client.list_courses())
        assert len(blind.requests_to(f"{ROSTERING}/classes")) == 2
        assert caught.value.message.startswith(f"GET {blind.base_url}{ROSTERING}/classes?")
    assert caught.value.message.endswith(
        ": paging repeats itself at offset 2 (every record of the page was read already):"
        " the server ignores offset"
    )


def test_an_empty_page_below_x_total_count_is_refused_not_the_end(
    client: OneRosterClient, fake: FakeOneRoster
) -> None:
    """Taken for the end, it cut the roster short: a sync marked the rest dropped."""
    empty = Reply.json({"enrollments": []}, headers={"X-Total-Count": "8"})
    fake.inject(Fault(reply=empty, match=lambda r: r.path.endswith("/enrollments")
                      and r.arg("offset") == "4"))  # fmt: skip
    with pytest.raises(ValidationFailed) as caught:
        list(client.list_roster("cls-1"))
    assert caught.value.message.startswith(f"GET {fake.base_url}{ROSTERING}/enrollments?")
    assert caught.value.message.endswith(
        ": the page at offset 4 is empty, but X-Total-Count says 8 records; not taken for the"
        " end of the listing"
    )


def test_client_secret_can_go_in_the_form(data: Dataset) -> None:
    with FakeOneRoster(data, auth_methods=frozenset({"post"})) as fake:
        with closing(make_client(fake, token_auth="post")) as client:
            assert len(list(client.list_courses())) == 5
        form = fake.token_requests()[0].form()
    assert form["client_id"] == [fake.client_id]
    assert "roster-core.readonly" in form["scope"][0]


def test_invalid_client_leaks_nothing(fake: FakeOneRoster) -> None:
    wrong = "wrong-secret-value-42"
    with closing(make_client(fake, secret=wrong)) as client:
        with pytest.raises(LMSRequestRejected, match="invalid_client") as caught:
            list(client.list_courses())
        texts = [str(caught.value), repr(caught.value), repr(client.tokens), repr(client.config)]
    assert caught.value.status_code == 401
    assert all(wrong not in text for text in texts)


def test_a_user_known_by_one_name_is_rostered(
    client: OneRosterClient, fake: FakeOneRoster, spec: OneRosterSpec
) -> None:
    """UserDType requires givenName and familyName as strings, which may be empty."""
    for user_id, given, family in (("m1", "Sukarno", ""), ("m2", "", "Teller")):
        user = fake.data.add_user(given or "x", family or "x", id=user_id)
        user.given_name, user.family_name = given, family
        fake.data.enroll("cls-1", user_id)
    roster = {e.external_user_id: e for e in client.list_roster("cls-1")}
    assert (roster["m1"].given_name, roster["m1"].family_name) == ("Sukarno", None)
    assert (roster["m2"].given_name, roster["m2"].family_name) == (None, "Teller")
    spec.check_exchanges(fake)


def test_paging_without_x_total_count_follows_the_link_header(fake: FakeOneRoster) -> None:
    """X-Total-Count is declared but not required; the provider caps limit at 2 of our 100."""
    fake.total_count = False
    with closing(make_client(fake)) as client:
        courses = [course.external_id for course in client.list_courses()]
    assert courses == [f"cls-{number}" for number in range(1, 6)]
    offsets = [r.arg("offset") for r in fake.requests_to(f"{ROSTERING}/classes")]
    assert offsets == ["0", "2", "4"]  # the last page has no rel="next": no empty fourth call


def test_refusals_quote_the_status_info_description_and_code_minor(
    fake: FakeOneRoster, spec: OneRosterSpec
) -> None:
    roster_only = ["https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly"]
    with closing(make_client(fake, scopes=roster_only)) as client:
        with pytest.raises(LMSRequestRejected) as caught:
            list(client.list_assignments("cls-1"))
    assert caught.value.status_code == 403
    assert caught.value.message.endswith(
        "was rejected with HTTP 403: The token lacks the scope for this request (forbidden)"
    )
    assert "imsx_" not in caught.value.message
    assert spec.check_exchanges(fake) == 1  # the body is the spec's imsx_StatusInfoDType


def test_throttling_and_server_errors_are_retried(
    client: OneRosterClient, fake: FakeOneRoster, spec: OneRosterSpec
) -> None:
    fake.throttle(2, retry_after="1", path=f"{ROSTERING}/classes")
    fake.server_errors(3, status=500, path=f"{ROSTERING}/classes")

    assert len(list(client.list_courses())) == 5
    spec.check_exchanges(fake)


def test_server_error_storm_is_unavailable_without_leaking_the_token(fake: FakeOneRoster) -> None:
    fake.server_errors(100, status=503, path=f"{ROSTERING}/classes")
    with closing(make_client(fake, max_retries=2)) as client:
        with pytest.raises(LMSUnavailable) as caught:
            list(client.list_courses())
        token = client.tokens.token()
    assert token not in str(caught.value)
    assert fake.client_secret not in str(caught.value)


@pytest.mark.parametrize(
    ("item", "named"),
    [
        ({"sourcedId": "x", "status": "active"}, "'title'"),
        ({"status": "active", "title": "t"}, "'sourcedId'"),
        ("just a string", "JSON object"),
    ],
)
def test_missing_required_fields_are_named(
    client: OneRosterClient, fake: FakeOneRoster, item: Any, named: str
) -> None:
    reply = Reply.json({"classes": [item]}, headers={"X-Total-Count": "1"})
    fake.inject(Fault(reply=reply, match=lambda r: r.path == f"{ROSTERING}/classes"))

    with pytest.raises(ValidationFailed, match=named):
        list(client.list_courses())


def test_enrollment_without_user_is_invalid(client: OneRosterClient, fake: FakeOneRoster) -> None:
    broken = {"sourcedId": "e1", "status": "active", "class": {}, "user": {}, "role": "student"}
    reply = Reply.json({"enrollments": [broken]}, headers={"X-Total-Count": "1"})
    fake.inject(Fault(reply=reply, match=lambda r: r.path == f"{ROSTERING}/enrollments"))

    with pytest.raises(ValidationFailed, match=r"user\.sourcedId"):
        list(client.list_roster("cls-1"))


def test_malformed_json_is_validation_failed(client: OneRosterClient, fake: FakeOneRoster) -> None:
    fake.malformed_json(path=f"{GRADEBOOK}/classes/")

    with pytest.raises(ValidationFailed):
        list(client.list_assignments("cls-1"))


def test_spec_check_is_not_vacuous(spec: OneRosterSpec) -> None:
    broken_class = {"classes": [{"sourcedId": "c", "status": "live", "title": "t"}]}
    errors = spec.errors(f"{ROSTER_URI}#/components/schemas/ClassSetDType", broken_class)
    assert any("status" in e or "'live'" in e for e in errors)
    assert any("'course' is a required property" in e for e in errors)
    bad_result = {"result": {"sourcedId": "r", "scoreDate": "yesterday"}}
    errors = spec.errors(f"{GRADEBOOK_URI}#/components/schemas/SingleResultDType", bad_result)
    assert any("'lineItem' is a required property" in e for e in errors)


def test_configuration_errors_name_the_setting(fake: FakeOneRoster) -> None:
    creds = Credentials(client_id="c", client_secret="s")
    with pytest.raises(ConfigurationError, match="token_endpoint"):
        OneRosterClient(ConnectionConfig("oneroster", fake.base_url, creds))
    with pytest.raises(ConfigurationError, match="client_secret"):
        OneRosterClient(
            ConnectionConfig(
                "oneroster", fake.base_url, Credentials(client_id="c"), token_endpoint="x"
            )
        )
