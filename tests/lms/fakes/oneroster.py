"""A fake OneRoster 1.2 provider (Rostering + Gradebook) over a ``Dataset``.

Every response the fake builds and every request body it receives is kept in
``exchanges`` so tests can check them against the official OpenAPI document
(see ``tests/lms/test_oneroster.py``).  Collections page with ``limit``/``offset``
and ``X-Total-Count``, accept ``filter`` predicates joined by one ``AND`` or
``OR``, and tokens come from an OAuth2 client-credentials endpoint (HTTP
Basic or form fields).  ``stale_overwrites`` lists every PUT that replaced a
result scored later than the incoming one, which a correct client never does.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import operator
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any
from urllib.parse import unquote_plus, urlencode

from tests.lms.fakes.dataset import Dataset, FakeAssignment, FakeCourse, FakeEnrollment
from tests.lms.fakes.server import FakeLMSServer, RecordedRequest, Reply

ROSTERING = "/ims/oneroster/rostering/v1p2"
GRADEBOOK = "/ims/oneroster/gradebook/v1p2"
TOKEN_PATH = "/oauth/token"
SCOPE = "https://purl.imsglobal.org/spec/or/v1p2/scope/"
READ_ROSTER = {SCOPE + "roster-core.readonly", SCOPE + "roster.readonly"}
READ_GRADEBOOK = {SCOPE + "gradebook.readonly"}
WRITE_GRADEBOOK = {SCOPE + "gradebook.createput"}
KNOWN_SCOPES = READ_ROSTER | READ_GRADEBOOK | WRITE_GRADEBOOK | {SCOPE + "gradebook.delete"}
#: Dataset roles as enrollment roles (a TA is a non-primary teacher in OneRoster).
ENROLLMENT_ROLES = {
    "student": "student",
    "teacher": "teacher",
    "ta": "teacher",
    "observer": "ext:observer",
    "designer": "ext:designer",
}
USER_ROLES = {"student": "student", "teacher": "teacher", "ta": "aide", "observer": "guardian"}
SCHOOL = "school-1"
TERM = "term-2026"
EPOCH = "2026-01-05T08:00:00.000Z"
_CLASS_FILTER = re.compile(r"class\.sourcedId='([^']*)'")
_PREDICATE = re.compile(r"^\s*([A-Za-z0-9_.]+)\s*(!=|>=|<=|=|>|<|~)\s*'([^']*)'\s*$")


@dataclass(frozen=True)
class Exchange:
    """One request the fake answered itself, with its reply."""

    request: RecordedRequest
    reply: Reply


def status_info(status: int, minor: str, description: str) -> Reply:
    """The ``imsx_StatusInfoDType`` error body of the REST binding."""
    body = {
        "imsx_codeMajor": "failure",
        "imsx_severity": "error",
        "imsx_description": description,
        "imsx_CodeMinor": {
            "imsx_codeMinorField": [
                {"imsx_codeMinorFieldName": "TargetEndSystem", "imsx_codeMinorFieldValue": minor}
            ]
        },
    }
    return Reply.json(body, status)


def stamp(value: dt.datetime | None, default: str = EPOCH) -> str:
    if value is None:
        return default
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


_OPS: dict[str, Callable[[str, str], bool]] = {
    "=": operator.eq,
    "!=": operator.ne,
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "~": lambda value, wanted: wanted.lower() in value.lower(),
}


def matches(item: dict[str, Any], expression: str | None) -> bool:
    """Evaluate a OneRoster ``filter`` (raises ``ValueError`` when malformed)."""
    if not expression:
        return True
    joiner = " OR " if " OR " in expression else " AND "
    results = []
    for part in expression.split(joiner):
        found = _PREDICATE.match(part)
        if found is None:
            raise ValueError(part)
        path, op, wanted = found.groups()
        value: Any = item
        for key in path.split("."):
            value = value.get(key) if isinstance(value, dict) else None
        results.append(op == "!=" if value is None else _OPS[op](str(value), wanted))
    return any(results) if joiner == " OR " else all(results)


class FakeOneRoster(FakeLMSServer):
    """Rostering and Gradebook over ``data`` for the client ``client_id``/``client_secret``.

    ``deleted`` holds sourcedIds rendered with ``status: tobedeleted``;
    ``results`` the stored results by sourcedId.
    """

    name = "fake-oneroster"

    def __init__(
        self,
        data: Dataset | None = None,
        *,
        client_id: str = "or-client",
        client_secret: str | None = None,
        token_lifetime: int = 3600,
        page_size: int = 100,
        auth_methods: frozenset[str] = frozenset({"basic", "post"}),
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.data = data or Dataset()
        self.client_id = client_id
        self.client_secret = client_secret or secrets.token_urlsafe(18)
        self.token_lifetime = token_lifetime
        self.page_size = page_size
        self.total_count = True
        """Send ``X-Total-Count``; the spec declares it without requiring it, and some
        providers leave it out and page by ``Link`` alone."""
        self.auth_methods = auth_methods
        self.clock = clock
        self.deadlines: dict[str, float] = {}
        self.scopes: dict[str, set[str]] = {}
        self.deleted: set[str] = set()
        self.results: dict[str, dict[str, Any]] = {}
        self.stale_overwrites: list[dict[str, Any]] = []
        self.exchanges: list[Exchange] = []
        self.unauthorized = 0
        cls = r"/classes/(?P<class_id>[^/]+)"
        self.add_routes(
            [
                ("GET", ROSTERING + r"/classes", self._classes),
                ("GET", ROSTERING + cls, self._class),
                ("GET", ROSTERING + cls + r"/(?P<kind>students|teachers)", self._class_users),
                ("GET", ROSTERING + r"/enrollments", self._enrollments),
                ("GET", ROSTERING + r"/users/(?P<user_id>[^/]+)", self._user),
                ("GET", GRADEBOOK + cls + r"/lineItems", self._line_items),
                ("GET", GRADEBOOK + r"/lineItems/(?P<item_id>[^/]+)", self._line_item),
                ("GET", GRADEBOOK + r"/results", self._results),
                ("GET", GRADEBOOK + r"/results/(?P<result_id>[^/]+)", self._result),
                ("PUT", GRADEBOOK + r"/results/(?P<result_id>[^/]+)", self._put_result),
            ]
        )

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    def expire_all_tokens(self) -> None:
        for token in list(self.tokens):
            self.expire_token(token)

    def token_requests(self) -> list[RecordedRequest]:
        return self.requests_to(TOKEN_PATH, "POST")

    def add_result(
        self,
        line_item_id: str,
        user_id: str,
        score: Decimal | int,
        when: dt.datetime,
        sourced_id: str,
    ) -> dict[str, Any]:
        """A result entered in the gradebook by someone else (a teacher, the SIS)."""
        assignment = self.data.assignments[line_item_id]
        result = self._result_body(
            assignment, user_id, sourced_id, number(Decimal(score)), stamp(when)
        )
        self.results[sourced_id] = result
        self.data.set_grade(line_item_id, user_id, score, at=when, source="teacher")
        return result

    # auth -------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        reply = self._handle(request)
        self.exchanges.append(Exchange(request, reply))
        return reply

    def _handle(self, request: RecordedRequest) -> Reply:
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
        if token in self.tokens and self.clock() >= self.deadlines.get(token, 0.0):
            self.expire_token(token)
        if token not in self.tokens:
            self.unauthorized += 1
            return status_info(401, "unauthorisedrequest", "The access token is missing or expired")
        if not self._needed_scopes(request) & self.scopes.get(token, set()):
            return status_info(403, "forbidden", "The token lacks the scope for this request")
        return super().handle(request)

    def _needed_scopes(self, request: RecordedRequest) -> set[str]:
        if request.path.startswith(ROSTERING):
            return READ_ROSTER
        return WRITE_GRADEBOOK if request.method == "PUT" else READ_GRADEBOOK

    def _token(self, request: RecordedRequest) -> Reply:
        form = {key: values[0] for key, values in request.form().items()}
        client = (
            _basic(request.headers.get("authorization", ""))
            if "basic" in self.auth_methods
            else None
        )
        if client is None and "post" in self.auth_methods and "client_id" in form:
            client = (form["client_id"], form.get("client_secret", ""))
        if client != (self.client_id, self.client_secret):
            refusal = {
                "error": "invalid_client",
                "error_description": "Client authentication failed",
            }
            return Reply.json(refusal, 401)
        if form.get("grant_type") != "client_credentials":
            return Reply.json({"error": "unsupported_grant_type"}, 400)
        granted = set(form.get("scope", "").split()) & KNOWN_SCOPES
        token = self.issue_token()
        self.deadlines[token] = self.clock() + self.token_lifetime
        self.scopes[token] = granted
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
            "scope": " ".join(sorted(granted)),
        }
        return Reply.json(body)

    # collections ------------------------------------------------------------

    def _collection(self, request: RecordedRequest, key: str, items: list[dict[str, Any]]) -> Reply:
        try:
            chosen = [item for item in items if matches(item, request.arg("filter"))]
        except ValueError as exc:
            return status_info(400, "invalid_filter_field", f"Unsupported filter: {exc}")
        try:
            limit = int(request.arg("limit") or 100)
            offset = int(request.arg("offset") or 0)
        except ValueError:
            return status_info(400, "invaliddata", "limit and offset must be integers")
        if limit < 1 or offset < 0:
            return status_info(400, "invaliddata", "limit must be >= 1 and offset >= 0")
        limit = min(limit, self.page_size)
        headers = {"X-Total-Count": str(len(chosen))} if self.total_count else {}
        if offset + limit < len(chosen):
            keep = [
                (k, v)
                for k, vs in request.query.items()
                if k not in ("limit", "offset")
                for v in vs
            ]
            query = urlencode([*keep, ("limit", limit), ("offset", offset + limit)])
            headers["Link"] = f'<{self.base_url}{request.path}?{query}>; rel="next"'
        return Reply.json({key: chosen[offset : offset + limit]}, headers=headers)

    def _single(self, key: str, item: dict[str, Any] | None) -> Reply:
        if item is None:
            return status_info(404, "unknownobject", "Unknown Object")
        return Reply.json({key: item})

    # rostering --------------------------------------------------------------

    def _ref(self, root: str, kind: str, sourced_id: str, type_: str) -> dict[str, str]:
        return {
            "href": f"{self.base_url}{root}/{kind}/{sourced_id}",
            "sourcedId": sourced_id,
            "type": type_,
        }

    def _status(self, sourced_id: str) -> str:
        return "tobedeleted" if sourced_id in self.deleted else "active"

    def _class_body(self, course: FakeCourse) -> dict[str, Any]:
        return {
            "sourcedId": course.id,
            "status": self._status(course.id),
            "dateLastModified": EPOCH,
            "title": course.title,
            "classCode": course.code,
            "classType": "scheduled",
            "course": self._ref(ROSTERING, "courses", f"course-{course.id}", "course"),
            "school": self._ref(ROSTERING, "schools", SCHOOL, "org"),
            "terms": [self._ref(ROSTERING, "terms", TERM, "academicSession")],
        }

    def _user_body(self, user_id: str, role: str | None = None) -> dict[str, Any] | None:
        user = self.data.users.get(user_id)
        if user is None:
            return None
        if role is None:  # a lookup by id: the user's most senior enrollment decides
            roles = {e.role for e in self.data.enrollments.values() if e.user_id == user_id}
            role = next((r for r in ("teacher", "ta", "student") if r in roles), "observer")
        return {
            "sourcedId": user.id,
            "status": self._status(user.id),
            "dateLastModified": EPOCH,
            "enabledUser": "true",
            "givenName": user.given_name,
            "familyName": user.family_name,
            "username": user.username,
            "email": user.email,
            "roles": [
                {
                    "roleType": "primary",
                    "role": USER_ROLES.get(role, "teacher"),
                    "org": self._ref(ROSTERING, "orgs", SCHOOL, "org"),
                }
            ],
        }

    def _enrollment_body(self, enrollment: FakeEnrollment) -> dict[str, Any]:
        body: dict[str, Any] = {
            "sourcedId": enrollment.id,
            "status": "tobedeleted"
            if enrollment.state == "deleted"
            else self._status(enrollment.id),
            "dateLastModified": EPOCH,
            "user": self._ref(ROSTERING, "users", enrollment.user_id, "user"),
            "class": self._ref(ROSTERING, "classes", enrollment.course_id, "class"),
            "school": self._ref(ROSTERING, "schools", SCHOOL, "org"),
            "role": ENROLLMENT_ROLES[enrollment.role],
        }
        if body["role"] == "teacher":
            body["primary"] = "true" if enrollment.role == "teacher" else "false"
        if enrollment.state == "completed":
            body["endDate"] = "2020-06-30"
        elif enrollment.state in ("invited", "inactive"):
            body["beginDate"] = "2099-09-01"
        return body

    def _classes(self, request: RecordedRequest) -> Reply:
        return self._collection(
            request, "classes", [self._class_body(c) for c in self.data.courses.values()]
        )

    def _class(self, request: RecordedRequest, class_id: str) -> Reply:
        course = self.data.courses.get(class_id)
        return self._single("class", self._class_body(course) if course else None)

    def _class_users(self, request: RecordedRequest, class_id: str, kind: str) -> Reply:
        roles = {"students": ("student",), "teachers": ("teacher", "ta")}[kind]
        users = [
            self._user_body(e.user_id, e.role)
            for e in self.data.course_enrollments(class_id)
            if e.role in roles and e.state != "deleted"
        ]
        return self._collection(request, "users", [u for u in users if u is not None])

    def _enrollments(self, request: RecordedRequest) -> Reply:
        one_class = _CLASS_FILTER.fullmatch(request.arg("filter") or "")
        if one_class:  # the common query, answered from the index rather than a full scan
            chosen = self.data.course_enrollments(one_class.group(1))
        else:
            chosen = list(self.data.enrollments.values())
        return self._collection(request, "enrollments", [self._enrollment_body(e) for e in chosen])

    def _user(self, request: RecordedRequest, user_id: str) -> Reply:
        return self._single("user", self._user_body(user_id))

    # gradebook --------------------------------------------------------------

    def _line_item_body(self, assignment: FakeAssignment) -> dict[str, Any]:
        return {
            "sourcedId": assignment.id,
            "status": self._status(assignment.id),
            "dateLastModified": EPOCH,
            "title": assignment.title,
            "description": assignment.description,
            "assignDate": stamp(assignment.unlock_at),
            "dueDate": stamp(assignment.due_at, "2026-06-30T23:59:00.000Z"),
            "class": self._ref(ROSTERING, "classes", assignment.course_id, "class"),
            "school": self._ref(ROSTERING, "schools", SCHOOL, "org"),
            "category": self._ref(GRADEBOOK, "categories", "cat-quizzes", "category"),
            "resultValueMin": 0.0,
            "resultValueMax": float(assignment.points_possible),
        }

    def _result_body(
        self, assignment: FakeAssignment, user_id: str, sourced_id: str, score: Any, when: str
    ) -> dict[str, Any]:
        return {
            "sourcedId": sourced_id,
            "status": "active",
            "dateLastModified": when,
            "lineItem": self._ref(GRADEBOOK, "lineItems", assignment.id, "lineItem"),
            "student": self._ref(ROSTERING, "users", user_id, "user"),
            "class": self._ref(ROSTERING, "classes", assignment.course_id, "class"),
            "scoreStatus": "fully graded",
            "score": score,
            "scoreDate": when,
        }

    def _line_items(self, request: RecordedRequest, class_id: str) -> Reply:
        if class_id not in self.data.courses:
            return status_info(404, "unknownobject", "Unknown class")
        items = [self._line_item_body(a) for a in self.data.course_assignments(class_id)]
        return self._collection(request, "lineItems", items)

    def _line_item(self, request: RecordedRequest, item_id: str) -> Reply:
        assignment = self.data.assignments.get(item_id)
        return self._single("lineItem", self._line_item_body(assignment) if assignment else None)

    def _results(self, request: RecordedRequest) -> Reply:
        return self._collection(request, "results", list(self.results.values()))

    def _result(self, request: RecordedRequest, result_id: str) -> Reply:
        return self._single("result", self.results.get(result_id))

    def _put_result(self, request: RecordedRequest, result_id: str) -> Reply:
        try:
            body = request.json()
        except ValueError:
            return status_info(400, "invaliddata", "The body is not JSON")
        result = body.get("result") if isinstance(body, dict) else None
        problem = _result_problem(result, result_id)
        if problem is not None:
            return status_info(422, "invaliddata", problem)
        assert isinstance(result, dict)
        assignment = self.data.assignments.get(result["lineItem"]["sourcedId"])
        student = result["student"]["sourcedId"]
        if assignment is None or self.data.enrollment_of(assignment.course_id, student) is None:
            return status_info(404, "unknownobject", "Unknown line item or student")
        when = parse_time(result["scoreDate"])
        for other in self.results.values():
            same_grade = (other["lineItem"]["sourcedId"], other["student"]["sourcedId"]) == (
                assignment.id,
                student,
            )
            if same_grade and other["status"] == "active" and parse_time(other["scoreDate"]) > when:
                self.stale_overwrites.append(result)
        created = result_id not in self.results
        self.results[result_id] = {**result, "dateLastModified": stamp(dt.datetime.now(dt.UTC))}
        score = result.get("score")
        self.data.set_grade(
            assignment.id,
            student,
            None if score is None else Decimal(str(score)),
            at=when,
            comment=result.get("comment"),
            source="api",
        )
        return Reply.json({"result": self.results[result_id]}, 201 if created else 200)


def number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


def _result_problem(result: Any, result_id: str) -> str | None:
    if not isinstance(result, dict):
        return "the body must be {'result': {...}}"
    if result.get("sourcedId") != result_id:
        return "result.sourcedId must equal the sourcedId in the path"
    for key in ("lineItem", "student"):
        if not isinstance(result.get(key), dict) or "sourcedId" not in result[key]:
            return f"result.{key}.sourcedId is required"
    try:
        parse_time(str(result.get("scoreDate")))
    except ValueError:
        return "result.scoreDate must be an ISO 8601 date or date-time"
    score = result.get("score")
    if score is not None and (isinstance(score, bool) or not isinstance(score, int | float)):
        return "result.score must be a number"
    return None


def _basic(header: str) -> tuple[str, str] | None:
    if not header.lower().startswith("basic "):
        return None
    try:
        pair = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    key, _, secret = pair.partition(":")
    return unquote_plus(key), unquote_plus(secret)
