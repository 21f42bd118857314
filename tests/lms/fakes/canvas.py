"""A fake Canvas LMS REST API (``/api/v1``) over a ``Dataset``.

Follows Canvas's published behaviour: bearer tokens (401 with
``{"errors": [{"message": ...}]}``), ``page``/``per_page`` paging with
absolute ``Link`` headers (``rel="last"`` can be left out, as Canvas does when
counting is costly), the ``X-Rate-Limit-Remaining`` cost bucket that turns
into ``403 Forbidden (Rate Limit Exceeded)`` when empty, and grading through
``submission[posted_grade]`` that never opens a student attempt.  A course
restricted by date (``restrict_by_date``) is listed as Canvas lists it to a
user who may not open it now, ``{"id": ..., "access_restricted_by_date": true}``
(with its name or uuid when asked), and its enrollments, assignments and
submissions (reading or grading one) answer 401 "user not authorized to
perform that action".
"""

from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

from tests.lms.fakes.dataset import Dataset, FakeAssignment, FakeCourse, FakeEnrollment
from tests.lms.fakes.server import FakeLMSServer, RecordedRequest, Reply

ENROLLMENT_TYPES = {
    "student": "StudentEnrollment",
    "teacher": "TeacherEnrollment",
    "ta": "TaEnrollment",
    "observer": "ObserverEnrollment",
    "designer": "DesignerEnrollment",
}
DEFAULT_ENROLLMENT_STATES = ("active", "invited")
NOT_FOUND = {"errors": [{"message": "The specified resource does not exist."}]}
UNAUTHORIZED = {
    "status": "unauthorized",
    "errors": [{"message": "user not authorized to perform that action"}],
}


def iso(value: dt.datetime | dt.date | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return f"{value.isoformat()}T00:00:00Z"


def number(value: Decimal | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


class FakeCanvas(FakeLMSServer):
    """Canvas over ``data``; ``token`` is valid from the start.

    ``request_cost`` and ``leak_rate`` drive the simulated cost bucket (by
    default requests are free, so the bucket stays full).
    """

    name = "fake-canvas"

    def __init__(
        self,
        data: Dataset | None = None,
        *,
        include_last_link: bool = True,
        default_per_page: int = 10,
        max_per_page: int = 100,
    ) -> None:
        super().__init__()
        self.data = data or Dataset()
        self.token = self.issue_token()
        self.include_last_link = include_last_link
        self.default_per_page = default_per_page
        self.max_per_page = max_per_page
        self.bucket_size = 700.0
        self.remaining = self.bucket_size
        self.request_cost = 0.0
        self.leak_rate = 10.0
        self._last_leak = time.monotonic()
        self.restricted: dict[str, tuple[str, ...]] = {}
        """Course id -> the fields Canvas still shows besides ``id`` (``name``, ``uuid``)."""
        course = r"/api/v1/courses/(?P<course_id>[^/]+)"
        submission = (
            course + r"/assignments/(?P<assignment_id>[^/]+)/submissions/(?P<user_id>[^/]+)"
        )
        self.add_routes(
            [
                ("GET", r"/api/v1/courses", self._courses),
                ("GET", r"/api/v1/accounts/(?P<account_id>[^/]+)/courses", self._courses),
                ("GET", course + r"/enrollments", self._enrollments),
                ("GET", course + r"/assignments", self._assignments),
                ("GET", submission, self._submission),
                ("PUT", submission, self._grade),
            ]
        )

    def handle(self, request: RecordedRequest) -> Reply:
        authorization = request.headers.get("authorization", "")
        token = (
            authorization.removeprefix("Bearer ").strip()
            if authorization
            else request.arg("access_token")
        )
        if not token:
            body = {
                "status": "unauthenticated",
                "errors": [{"message": "user authorization required"}],
            }
            return Reply.json(body, 401)
        if token not in self.tokens:
            headers = {"WWW-Authenticate": 'Bearer realm="canvas-lms"'}
            return Reply.json({"errors": [{"message": "Invalid access token."}]}, 401, headers)
        if not self._spend():
            return Reply.text("403 Forbidden (Rate Limit Exceeded)", 403, self._bucket_headers())
        reply = super().handle(request)
        reply.headers.update(self._bucket_headers())
        return reply

    def not_found(self, request: RecordedRequest) -> Reply:
        return Reply.json(NOT_FOUND, 404)

    def restrict_by_date(self, course_id: str, *, shown: tuple[str, ...] = ()) -> None:
        """Close the course to the token by date, as its end date (or start) does in Canvas."""
        self.restricted[course_id] = shown

    def _closed(self, request: RecordedRequest, course_id: str) -> Reply | None:
        """The answer for a course that is unknown or closed to the token, else None."""
        if course_id not in self.data.courses:
            return self.not_found(request)
        if course_id in self.restricted:
            return Reply.json(UNAUTHORIZED, 401)
        return None

    # rate limiting ----------------------------------------------------------

    def _spend(self) -> bool:
        now = time.monotonic()
        self.remaining = min(
            self.bucket_size, self.remaining + (now - self._last_leak) * self.leak_rate
        )
        self._last_leak = now
        if self.remaining - self.request_cost < 0:
            return False
        self.remaining -= self.request_cost
        return True

    def _bucket_headers(self) -> dict[str, str]:
        return {
            "X-Rate-Limit-Remaining": f"{max(self.remaining, 0.0):.3f}",
            "X-Request-Cost": f"{self.request_cost:.3f}",
        }

    # paging -----------------------------------------------------------------

    def _paged(self, request: RecordedRequest, items: list[Any]) -> Reply:
        try:
            per_page = int(request.arg("per_page") or self.default_per_page)
            page = int(request.arg("page") or 1)
        except ValueError:
            return Reply.json({"errors": [{"message": "invalid page"}]}, 400)
        per_page = max(1, min(per_page, self.max_per_page))
        page = max(1, page)
        last = max(1, -(-len(items) // per_page))
        chunk = items[(page - 1) * per_page : page * per_page]
        links = {"current": page, "first": 1}
        if page < last:
            links["next"] = page + 1
        if page > 1:
            links["prev"] = page - 1
        if self.include_last_link:
            links["last"] = last
        keep = [
            (k, v) for k, vs in request.query.items() if k not in ("page", "per_page") for v in vs
        ]
        url = f"{self.link_url}{request.path}"
        header = ",".join(
            f'<{url}?{urlencode([*keep, ("page", n), ("per_page", per_page)])}>; rel="{rel}"'
            for rel, n in links.items()
        )
        return Reply.json(chunk, headers={"Link": header})

    # resources --------------------------------------------------------------

    def _courses(self, request: RecordedRequest, account_id: str | None = None) -> Reply:
        include = request.query.get("include[]", [])
        return self._paged(request, [self._course(c, include) for c in self.data.courses.values()])

    def _course(self, course: FakeCourse, include: list[str]) -> dict[str, Any]:
        if course.id in self.restricted:
            shown = {"name": course.title, "uuid": f"uuid-{course.id}"}
            return {
                "id": int(course.id),
                **{key: shown[key] for key in self.restricted[course.id]},
                "access_restricted_by_date": True,
            }
        body: dict[str, Any] = {
            "id": int(course.id),
            "name": course.title,
            "course_code": course.code,
            "workflow_state": "available",
            "start_at": iso(course.start),
            "end_at": iso(course.end),
        }
        if "public_description" in include:
            body["public_description"] = course.description or None
        if "term" in include:
            body["term"] = {"id": 1, "name": "Default Term", "start_at": None, "end_at": None}
        if "teachers" in include:
            body["teachers"] = [
                {"id": int(e.user_id), "display_name": self.data.users[e.user_id].name}
                for e in self.data.course_enrollments(course.id)
                if e.role == "teacher" and e.state == "active"
            ]
        return body

    def _enrollments(self, request: RecordedRequest, course_id: str) -> Reply:
        closed = self._closed(request, course_id)
        if closed is not None:
            return closed
        states = request.query.get("state[]") or list(DEFAULT_ENROLLMENT_STATES)
        types = request.query.get("type[]")
        rows = [
            self._enrollment(e)
            for e in self.data.course_enrollments(course_id)
            if e.state in states and (types is None or ENROLLMENT_TYPES[e.role] in types)
        ]
        return self._paged(request, rows)

    def _enrollment(self, enrollment: FakeEnrollment) -> dict[str, Any]:
        user = self.data.users[enrollment.user_id]
        kind = ENROLLMENT_TYPES[enrollment.role]
        return {
            "id": int(enrollment.id),
            "course_id": int(enrollment.course_id),
            "user_id": int(user.id),
            "type": kind,
            "role": kind,
            "enrollment_state": enrollment.state,
            "user": {
                "id": int(user.id),
                "name": user.name,
                "sortable_name": f"{user.family_name}, {user.given_name}",
                "short_name": user.given_name,
                "login_id": user.username,
            },
        }

    def _assignments(self, request: RecordedRequest, course_id: str) -> Reply:
        closed = self._closed(request, course_id)
        if closed is not None:
            return closed
        rows = [self._assignment(a) for a in self.data.course_assignments(course_id)]
        return self._paged(request, rows)

    def _assignment(self, assignment: FakeAssignment) -> dict[str, Any]:
        return {
            "id": int(assignment.id),
            "course_id": int(assignment.course_id),
            "name": assignment.title,
            "description": assignment.description or None,
            "points_possible": number(assignment.points_possible),
            "due_at": iso(assignment.due_at),
            "unlock_at": iso(assignment.unlock_at),
            "lock_at": iso(assignment.lock_at),
            "submission_types": ["online_upload"],
            "grading_type": "points",
            "published": True,
        }

    # grading ----------------------------------------------------------------

    def _target(self, course_id: str, assignment_id: str, user_id: str) -> FakeAssignment | None:
        if course_id in self.restricted:
            return None
        assignment = self.data.assignments.get(assignment_id)
        if assignment is None or assignment.course_id != course_id:
            return None
        enrollment = self.data.enrollment_of(course_id, user_id)
        if enrollment is None or enrollment.role != "student":
            return None
        return assignment

    def _submission_body(
        self, assignment_id: str, user_id: str, request: RecordedRequest
    ) -> dict[str, Any]:
        state = self.data.grade(assignment_id, user_id)
        score = number(state.score) if state else None
        extra = {}
        if "assignment" in request.query.get("include[]", []):
            extra["assignment"] = self._assignment(self.data.assignments[assignment_id])
        return {
            **extra,
            "id": int(assignment_id) * 100_000 + int(user_id),
            "assignment_id": int(assignment_id),
            "user_id": int(user_id),
            "score": score,
            "grade": None if score is None else str(score),
            "graded_at": iso(state.graded_at) if state and state.score is not None else None,
            "workflow_state": "graded" if score is not None else "unsubmitted",
            "attempt": state.attempts if state else None,
        }

    def _submission(
        self, request: RecordedRequest, course_id: str, assignment_id: str, user_id: str
    ) -> Reply:
        if self._target(course_id, assignment_id, user_id) is None:
            return self._closed(request, course_id) or self.not_found(request)
        return Reply.json(self._submission_body(assignment_id, user_id, request))

    def _grade(
        self, request: RecordedRequest, course_id: str, assignment_id: str, user_id: str
    ) -> Reply:
        assignment = self._target(course_id, assignment_id, user_id)
        if assignment is None:
            return self._closed(request, course_id) or self.not_found(request)
        posted, comment = _grade_params(request)
        if posted is not None:
            score = _posted_score(posted, assignment.points_possible)
            if score is None:
                return Reply.json(
                    {"errors": [{"message": f"invalid posted_grade {posted!r}"}]}, 400
                )
            self.data.set_grade(assignment_id, user_id, score, comment=comment, source="api")
        return Reply.json(self._submission_body(assignment_id, user_id, request))


def _grade_params(request: RecordedRequest) -> tuple[str | None, str | None]:
    """``submission[posted_grade]`` and ``comment[text_comment]`` from a form or JSON body."""
    form = request.form()
    if form:
        posted = form.get("submission[posted_grade]", [None])[0]
        comment = form.get("comment[text_comment]", [None])[0]
        return posted, comment
    body = request.json() if request.body else {}
    return (body.get("submission") or {}).get("posted_grade"), (body.get("comment") or {}).get(
        "text_comment"
    )


def _posted_score(posted: str, points_possible: Decimal) -> Decimal | None:
    text = str(posted).strip()
    try:
        if text.endswith("%"):
            return Decimal(text[:-1]) * points_possible / 100
        return Decimal(text)
    except InvalidOperation:
        return None
