"""A fake Blackboard Learn REST API over a ``Dataset``.

Follows Learn's documented behaviour: OAuth2 client credentials with the
application key and secret as HTTP Basic, one-hour bearer tokens, ids in the
``_123_1`` form, ``{"results": [...], "paging": {"nextPage": ...}}`` paging
with ``offset``/``limit``, a calculated "Total" column in every gradebook and
grades set by ``PATCH`` on ``columns/{columnId}/users/{userId}``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import secrets
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any
from urllib.parse import unquote, unquote_plus, urlencode

from tests.lms.fakes.dataset import Dataset, FakeAssignment, FakeCourse, FakeEnrollment
from tests.lms.fakes.server import FakeLMSServer, RecordedRequest, Reply

TOKEN_PATH = "/learn/api/public/v1/oauth2/token"
ROLE_IDS = {
    "student": "Student",
    "teacher": "Instructor",
    "ta": "TeachingAssistant",
    "observer": "Guest",
    "designer": "CourseBuilder",
}
AVAILABLE = {"active": "Yes", "invited": "No", "inactive": "No", "completed": "Disabled"}
TOTAL_COLUMN = "_total_1"


def bb_id(raw: str) -> str:
    return f"_{raw}_1"


def raw_id(value: str) -> str:
    """Dataset id of a Learn primary id (``_123_1``); other forms pass through."""
    if value.startswith("_") and value.endswith("_1"):
        return value[1:-2]
    return value


def iso(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return f"{value.isoformat()}T00:00:00.000Z"


def number(value: Decimal | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def error(status: int, message: str) -> Reply:
    return Reply.json({"status": status, "message": message}, status)


class FakeBlackboard(FakeLMSServer):
    """Learn over ``data``; authenticate with ``app_key``/``app_secret``.

    ``token_lifetime`` is what ``expires_in`` says and when tokens stop
    working; ``expire_all_tokens()`` forces a mid-sync expiry.  ``availability``
    gives a course (by dataset id) its ``availability.available`` other than
    ``Yes``: ``No``, ``Disabled`` or ``Term``.
    """

    name = "fake-blackboard"

    def __init__(
        self,
        data: Dataset | None = None,
        *,
        app_key: str = "bb-app-key",
        app_secret: str | None = None,
        token_lifetime: int = 3600,
        page_size: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.data = data or Dataset()
        self.app_key = app_key
        self.app_secret = app_secret or secrets.token_urlsafe(18)
        self.token_lifetime = token_lifetime
        self.page_size = page_size
        self.clock = clock
        self.deadlines: dict[str, float] = {}
        self.unauthorized = 0
        self.availability: dict[str, str] = {}
        course = r"/learn/api/public/v\d/courses/(?P<course_id>[^/]+)"
        column = course + r"/gradebook/columns/(?P<column_id>[^/]+)"
        self.add_routes(
            [
                ("GET", r"/learn/api/public/v3/courses", self._courses),
                ("GET", r"/learn/api/public/v1/courses/(?P<course_id>[^/]+)/users", self._members),
                ("GET", course + r"/gradebook/columns", self._columns),
                ("GET", column, self._column),
                ("GET", column + r"/users/(?P<user_id>[^/]+)", self._grade),
                ("PATCH", column + r"/users/(?P<user_id>[^/]+)", self._set_grade),
            ]
        )

    # auth -------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        if self._bearer(request) is None:
            self.unauthorized += 1
            return error(401, "Bearer token is invalid")
        return super().handle(request)

    def expire_all_tokens(self) -> None:
        for token in list(self.tokens):
            self.expire_token(token)

    def token_requests(self) -> list[RecordedRequest]:
        return self.requests_to(TOKEN_PATH, "POST")

    def _bearer(self, request: RecordedRequest) -> str | None:
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
        if token in self.tokens and self.clock() >= self.deadlines.get(token, 0.0):
            self.expire_token(token)
        return token if token in self.tokens else None

    def _token(self, request: RecordedRequest) -> Reply:
        key, secret = _basic(request.headers.get("authorization", ""))
        if key != self.app_key or secret != self.app_secret:
            refusal = {"error": "invalid_client", "error_description": "Invalid client credentials"}
            return Reply.json(refusal, 401)
        if request.form().get("grant_type") != ["client_credentials"]:
            return Reply.json({"error": "unsupported_grant_type"}, 400)
        token = self.issue_token()
        self.deadlines[token] = self.clock() + self.token_lifetime
        body: dict[str, Any] = {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_lifetime,
        }
        return Reply.json(body)

    # paging -----------------------------------------------------------------

    def _paged(self, request: RecordedRequest, items: list[dict[str, Any]]) -> Reply:
        try:
            offset = int(request.arg("offset") or 0)
            limit = int(request.arg("limit") or self.page_size)
        except ValueError:
            return error(400, "Invalid paging parameters")
        limit = max(1, min(limit, self.page_size))
        body: dict[str, Any] = {"results": items[offset : offset + limit]}
        if offset + limit < len(items):
            keep = [
                (k, v)
                for k, vs in request.query.items()
                if k not in ("offset", "limit")
                for v in vs
            ]
            query = urlencode([*keep, ("offset", offset + limit), ("limit", limit)])
            # host-relative, as Learn writes it, unless ``link_base`` names a host
            body["paging"] = {"nextPage": f"{self.link_base or ''}{request.path}?{query}"}
        return Reply.json(body)

    # resources --------------------------------------------------------------

    def _course_of(self, course_id: str) -> FakeCourse | None:
        if course_id.startswith("courseId:"):
            code = unquote(course_id.removeprefix("courseId:"))
            return next((c for c in self.data.courses.values() if c.code == code), None)
        return self.data.courses.get(raw_id(course_id))

    def _courses(self, request: RecordedRequest) -> Reply:
        return self._paged(request, [self._course(c) for c in self.data.courses.values()])

    def _course(self, course: FakeCourse) -> dict[str, Any]:
        duration: dict[str, Any] = {"type": "Continuous"}
        if course.start or course.end:
            duration = {"type": "DateRange", "start": iso(course.start), "end": iso(course.end)}
        return {
            "id": bb_id(course.id),
            "courseId": course.code,
            "externalId": course.code,
            "name": course.title,
            "description": course.description or None,
            "organization": False,
            "availability": {
                "available": self.availability.get(course.id, "Yes"),
                "duration": duration,
            },
        }

    def _members(self, request: RecordedRequest, course_id: str) -> Reply:
        course = self._course_of(course_id)
        if course is None:
            return error(404, "Course not found")
        expand = "user" in (request.arg("expand") or "").split(",")
        rows = [
            self._member(e, expand)
            for e in self.data.course_enrollments(course.id)
            if e.state != "deleted"
        ]
        return self._paged(request, rows)

    def _member(self, enrollment: FakeEnrollment, expand: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "userId": bb_id(enrollment.user_id),
            "courseId": bb_id(enrollment.course_id),
            "courseRoleId": ROLE_IDS[enrollment.role],
            "availability": {"available": AVAILABLE[enrollment.state]},
        }
        if expand:
            user = self.data.users[enrollment.user_id]
            body["user"] = {
                "id": bb_id(user.id),
                "userName": user.username,
                "name": {"given": user.given_name, "family": user.family_name},
                "contact": {"email": user.email},
            }
        return body

    def _columns(self, request: RecordedRequest, course_id: str) -> Reply:
        course = self._course_of(course_id)
        if course is None:
            return error(404, "Course not found")
        total = {
            "id": TOTAL_COLUMN,
            "name": "Total",
            "score": {"possible": 0},
            "grading": {"type": "Calculated"},
        }
        columns = [self._column_body(a) for a in self.data.course_assignments(course.id)]
        return self._paged(request, [total, *columns])

    def _column_body(self, assignment: FakeAssignment) -> dict[str, Any]:
        return {
            "id": bb_id(assignment.id),
            "name": assignment.title,
            "description": assignment.description or None,
            "score": {"possible": number(assignment.points_possible)},
            "grading": {"type": "Manual", "due": iso(assignment.due_at)},
            "availability": {"available": "Yes"},
        }

    def _assignment_of(self, course_id: str, column_id: str) -> FakeAssignment | None:
        course = self._course_of(course_id)
        assignment = self.data.assignments.get(raw_id(column_id))
        if course is None or assignment is None or assignment.course_id != course.id:
            return None
        return assignment

    def _column(self, request: RecordedRequest, course_id: str, column_id: str) -> Reply:
        assignment = self._assignment_of(course_id, column_id)
        if assignment is None:
            return error(404, "Column not found")
        return Reply.json(self._column_body(assignment))

    def _grade(
        self, request: RecordedRequest, course_id: str, column_id: str, user_id: str
    ) -> Reply:
        assignment = self._assignment_of(course_id, column_id)
        state = assignment and self.data.grade(assignment.id, raw_id(user_id))
        if assignment is None or state is None:
            return error(404, "Grade not found")
        return Reply.json(self._grade_body(assignment, raw_id(user_id)))

    def _grade_body(self, assignment: FakeAssignment, user_id: str) -> dict[str, Any]:
        state = self.data.grade(assignment.id, user_id)
        score = state.score if state else None
        return {
            "userId": bb_id(user_id),
            "columnId": bb_id(assignment.id),
            "status": "Graded" if score is not None else "NeedsGrading",
            "score": number(score),
            "text": None if score is None else str(number(score)),
            "feedback": state.comment if state else None,
        }

    def _set_grade(
        self, request: RecordedRequest, course_id: str, column_id: str, user_id: str
    ) -> Reply:
        assignment = self._assignment_of(course_id, column_id)
        if assignment is None:
            return error(404, "Column not found")
        if self.data.enrollment_of(assignment.course_id, raw_id(user_id)) is None:
            return error(404, "User is not enrolled in the course")
        try:
            body = request.json()
        except ValueError:
            return error(400, "Malformed JSON")
        score = body.get("score") if isinstance(body, dict) else None
        if isinstance(score, bool) or not isinstance(score, int | float) or score < 0:
            return error(400, "score must be a non-negative number")
        self.data.set_grade(
            assignment.id,
            raw_id(user_id),
            Decimal(str(score)),
            comment=body.get("feedback"),
            source="api",
        )
        return Reply.json(self._grade_body(assignment, raw_id(user_id)))


def _basic(header: str) -> tuple[str | None, str | None]:
    if not header.lower().startswith("basic "):
        return None, None
    try:
        pair = base64.b64decode(header[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None, None
    key, _, secret = pair.partition(":")
    return unquote_plus(key), unquote_plus(secret)
