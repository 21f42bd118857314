"""A fake Schoology REST API (``/v1``) over a ``Dataset``.

Requests must carry a valid two-legged OAuth 1.0a signature, checked with
authlib's own RFC 5849 verification (HMAC-SHA1 or PLAINTEXT), a fresh
timestamp, an unused nonce and the ``oauth_token`` parameter, which Schoology's
two-legged requests send empty; anything else gets 401.  Lists page with
``start``/``limit`` (default 20, at most 200) and answer with ``total`` and
``links.next``.  Grades are read and written per section and enrollment.
With ``limit_rate`` it answers 429 to a consumer key past so many requests in
a rolling window, measured by its own clock, as Schoology does.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections import deque
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import unquote, urlencode

from authlib.oauth1.rfc5849 import signature
from authlib.oauth1.rfc5849.errors import OAuth1Error
from authlib.oauth1.rfc5849.wrapper import OAuth1Request

from tests.lms.fakes.dataset import Dataset, FakeAssignment, FakeCourse, FakeEnrollment
from tests.lms.fakes.server import FakeLMSServer, RecordedRequest, Reply

API_UID = "1"
STATUS_CODES = {"active": "1", "inactive": "2", "invited": "3", "completed": "5"}
VERIFIERS = {"HMAC-SHA1": signature.verify_hmac_sha1, "PLAINTEXT": signature.verify_plaintext}
CONSUMER_KEY = re.compile(r'oauth_consumer_key="([^"]*)"')


class _Consumer:
    def __init__(self, secret: str) -> None:
        self.secret = secret

    def get_client_secret(self) -> str:
        return self.secret


def number(value: Decimal | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


class FakeSchoology(FakeLMSServer):
    """Schoology over ``data``; ``consumer_key``/``consumer_secret`` are valid.

    ``API_UID`` ("1") is the API user and sees every course as a section;
    other uids see the sections they are enrolled in.
    """

    name = "fake-schoology"

    def __init__(
        self,
        data: Dataset | None = None,
        *,
        consumer_key: str = "consumer-key",
        consumer_secret: str = "consumer-secret",
        default_limit: int = 20,
        max_limit: int = 200,
        max_clock_skew: float = 300.0,
    ) -> None:
        super().__init__()
        self.data = data or Dataset()
        self.consumers = {consumer_key: consumer_secret}
        self.default_limit = default_limit
        self.max_limit = max_limit
        self.max_clock_skew = max_clock_skew
        self.nonces: set[tuple[str, str]] = set()
        #: a grade's ``exception`` (1 excused, 2 incomplete) by (assignment, user)
        self.exceptions: dict[tuple[str, str], int] = {}
        self.rate: tuple[int, float, Callable[[], float]] | None = None
        self.arrivals: dict[str, deque[float]] = {}
        #: the requests answered 429 for going past the rate limit (``limit_rate``)
        self.rate_limited: list[RecordedRequest] = []
        section = r"/v1/sections/(?P<section_id>[^/]+)"
        self.add_routes(
            [
                ("GET", r"/v1/users/(?P<uid>[^/]+)/sections", self._sections),
                ("GET", section + r"/enrollments", self._enrollments),
                ("GET", section + r"/assignments", self._assignments),
                ("GET", section + r"/assignments/(?P<assignment_id>[^/]+)", self._one_assignment),
                ("GET", section + r"/grades", self._grades),
                ("PUT", section + r"/grades", self._put_grades),
            ]
        )

    def mark_exception(
        self, assignment_id: str, user_id: str, code: int, at: dt.datetime | None = None
    ) -> None:
        """The teacher marks the grade excused (1) or incomplete (2): "If exception > 0 then
        grade will be set to NULL"; its ``timestamp`` moves to ``at``."""
        self.data.set_grade(assignment_id, user_id, None, at=at)
        self.exceptions[(assignment_id, user_id)] = code

    def limit_rate(
        self, requests: int, seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        """Answer 429 to a request that makes a consumer key's ``requests`` + 1 within
        ``seconds`` (a request counts until ``seconds`` after it came), by ``clock``."""
        self.rate = (requests, seconds, clock)

    def revoke_consumer(self, key: str) -> None:
        """The key stops working, as when an admin deletes the API credentials."""
        self.consumers.pop(key, None)

    def handle(self, request: RecordedRequest) -> Reply:
        problem = self._oauth_problem(request)
        if problem is not None:
            return Reply.json({"response_code": 401, "message": problem}, 401)
        wait = self._over_rate(request)
        if wait is not None:
            self.rate_limited.append(request)
            body = {"response_code": 429, "message": "Too Many Requests"}
            return Reply.json(body, 429, {"Retry-After": str(wait)})
        return super().handle(request)

    def not_found(self, request: RecordedRequest) -> Reply:
        return Reply.json({"response_code": 404, "message": "Not Found"}, 404)

    # OAuth 1.0a ---------------------------------------------------------------

    def _oauth_problem(self, request: RecordedRequest) -> str | None:
        header = request.headers.get("authorization", "")
        if not header.lower().startswith("oauth "):
            return "Missing OAuth authorization header"
        form = request.body.decode() if request.form_pairs() else None
        try:
            oauth = OAuth1Request(
                request.method,
                request.url,
                body=form,
                headers={"Authorization": header, "Host": request.host},
            )
        except (OAuth1Error, ValueError) as exc:
            return f"Malformed OAuth request: {exc}"
        if "oauth_token" not in oauth.oauth_params:
            # "For two-legged OAuth requests, the oauth_token still needs to be defined"
            return "Missing oauth_token (a two-legged request sends it empty)"
        secret = self.consumers.get(oauth.client_id or "")
        if secret is None:
            return "Invalid consumer key"
        verify = VERIFIERS.get(oauth.signature_method or "")
        if verify is None:
            return f"Unsupported signature method {oauth.signature_method!r}"
        try:
            skew = abs(time.time() - int(oauth.timestamp or "0"))
        except ValueError:
            return "Invalid timestamp"
        if skew > self.max_clock_skew:
            return "Timestamp is too far from server time"
        nonce = (oauth.client_id, oauth.oauth_params.get("oauth_nonce", ""))
        if not nonce[1] or nonce in self.nonces:
            return "Nonce already used"
        oauth.client = _Consumer(secret)
        if not verify(oauth):
            return "Invalid OAuth signature"
        self.nonces.add(nonce)
        return None

    def _over_rate(self, request: RecordedRequest) -> int | None:
        """Whole seconds to wait when ``request`` goes past the limit, else ``None``."""
        if self.rate is None:
            return None
        requests, seconds, clock = self.rate
        found = CONSUMER_KEY.search(request.headers.get("authorization", ""))
        came = self.arrivals.setdefault(unquote(found.group(1)) if found else "", deque())
        now = clock()
        while came and came[0] <= now - seconds:
            came.popleft()
        came.append(now)
        return math.ceil(came[0] + seconds - now) if len(came) > requests else None

    # paging -------------------------------------------------------------------

    def _paged(self, request: RecordedRequest, key: str, items: list[Any]) -> Reply:
        try:
            start = max(0, int(request.arg("start") or 0))
            limit = int(request.arg("limit") or self.default_limit)
        except ValueError:
            return Reply.json({"response_code": 400, "message": "Invalid start or limit"}, 400)
        limit = max(1, min(limit, self.max_limit))
        links = {"self": self._page_url(request, start, limit)}
        if start + limit < len(items):
            links["next"] = self._page_url(request, start + limit, limit)
        return Reply.json({key: items[start : start + limit], "total": len(items), "links": links})

    def _page_url(self, request: RecordedRequest, start: int, limit: int) -> str:
        keep = [
            (k, v) for k, vs in request.query.items() if k not in ("start", "limit") for v in vs
        ]
        query = urlencode([*keep, ("start", start), ("limit", limit)])
        return f"{self.link_url}{request.path}?{query}"

    # resources ----------------------------------------------------------------

    def _sections(self, request: RecordedRequest, uid: str) -> Reply:
        if uid == API_UID:
            courses = list(self.data.courses.values())
        elif uid in self.data.users:
            courses = [
                self.data.courses[e.course_id]
                for e in self.data.enrollments.values()
                if e.user_id == uid and e.state != "deleted"
            ]
        else:
            return self.not_found(request)
        return self._paged(request, "section", [self._section(c) for c in courses])

    def _section(self, course: FakeCourse) -> dict[str, Any]:
        return {
            "id": course.id,
            "course_title": course.title,
            "course_code": course.code,
            "course_id": f"9{course.id}",
            "section_title": "Section 1",
            "section_code": f"{course.code}-1",
            "description": course.description,
            "active": 1,
        }

    def _enrollments(self, request: RecordedRequest, section_id: str) -> Reply:
        if section_id not in self.data.courses:
            return self.not_found(request)
        rows = [
            self._enrollment(e)
            for e in self.data.course_enrollments(section_id)
            if e.state in STATUS_CODES and e.role != "observer"
        ]
        return self._paged(request, "enrollment", rows)

    def _enrollment(self, enrollment: FakeEnrollment) -> dict[str, Any]:
        user = self.data.users[enrollment.user_id]
        return {
            "id": enrollment.id,
            "uid": user.id,
            "school_uid": user.username,
            "name_first": user.given_name,
            "name_last": user.family_name,
            "name_display": user.name,
            "admin": 0 if enrollment.role == "student" else 1,
            "status": STATUS_CODES[enrollment.state],
        }

    def _assignments(self, request: RecordedRequest, section_id: str) -> Reply:
        if section_id not in self.data.courses:
            return self.not_found(request)
        rows = [self._assignment(a) for a in self.data.course_assignments(section_id)]
        return self._paged(request, "assignment", rows)

    def _one_assignment(
        self, request: RecordedRequest, section_id: str, assignment_id: str
    ) -> Reply:
        assignment = self.data.assignments.get(assignment_id)
        if assignment is None or assignment.course_id != section_id:
            return self.not_found(request)
        return Reply.json(self._assignment(assignment))

    def _assignment(self, assignment: FakeAssignment) -> dict[str, Any]:
        due = (
            assignment.due_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            if assignment.due_at
            else ""
        )
        return {
            "id": assignment.id,
            "title": assignment.title,
            "description": assignment.description,
            "due": due,
            "max_points": str(number(assignment.points_possible)),
            "type": "assignment",
            "published": 1,
        }

    # grades -------------------------------------------------------------------

    def _student(self, section_id: str, enrollment_id: str) -> FakeEnrollment | None:
        enrollment = self.data.enrollments.get(enrollment_id)
        if enrollment is None or enrollment.course_id != section_id or enrollment.role != "student":
            return None
        return enrollment

    def _grades(self, request: RecordedRequest, section_id: str) -> Reply:
        if section_id not in self.data.courses:
            return self.not_found(request)
        only_assignment = request.arg("assignment_id")
        only_enrollment = request.arg("enrollment_id")
        rows = []
        for assignment in self.data.course_assignments(section_id):
            if only_assignment not in (None, assignment.id):
                continue
            for enrollment in self.data.course_enrollments(section_id):
                state = self.data.grade(assignment.id, enrollment.user_id)
                if state is None or only_enrollment not in (None, enrollment.id):
                    continue
                rows.append(
                    {
                        "enrollment_id": int(enrollment.id),
                        "assignment_id": int(assignment.id),
                        "grade": number(state.score),
                        "max_points": number(assignment.points_possible),
                        "timestamp": int(state.graded_at.timestamp()),
                        "comment": state.comment or "",
                        "exception": self.exceptions.get((assignment.id, enrollment.user_id), 0),
                        "type": "assignment",
                    }
                )
        return Reply.json({"grades": {"grade": rows}, "final_grade": [], "grading_scale": None})

    def _put_grades(self, request: RecordedRequest, section_id: str) -> Reply:
        if section_id not in self.data.courses:
            return self.not_found(request)
        try:
            items = request.json()["grades"]["grade"]
        except (ValueError, KeyError, TypeError):
            return Reply.json(
                {"response_code": 400, "message": "Body must be {grades: {grade: [...]}}"}, 400
            )
        return Reply.json(
            {"grades": {"grade": [self._put_one(section_id, item) for item in items]}}
        )

    def _put_one(self, section_id: str, item: dict[str, Any]) -> dict[str, Any]:
        result = {
            "enrollment_id": item.get("enrollment_id"),
            "assignment_id": item.get("assignment_id"),
        }
        enrollment = self._student(section_id, str(item.get("enrollment_id")))
        assignment = self.data.assignments.get(str(item.get("assignment_id")))
        if enrollment is None or assignment is None or assignment.course_id != section_id:
            return {**result, "response_code": 404, "message": "Enrollment or assignment not found"}
        try:
            score = Decimal(str(item["grade"]))
        except (KeyError, InvalidOperation):
            return {**result, "response_code": 400, "message": "Invalid grade"}
        comment = item.get("comment") or None
        self.data.set_grade(assignment.id, enrollment.user_id, score, comment=comment, source="api")
        self.exceptions.pop((assignment.id, enrollment.user_id), None)
        return {**result, "response_code": 200}
