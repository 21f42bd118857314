"""A fake LTI 1.3 Advantage platform: token endpoint, NRPS and AGS over a ``Dataset``.

The token endpoint verifies the tool's RS256 client assertion with the tool's
public key (iss/sub, aud, exp, unique jti, kid) as the 1EdTech Security
Framework requires.  Each course of the dataset is a context with an NRPS
memberships URL and an AGS line items URL, paged with ``Link: rel="next"``.
Scores follow the AGS rule that a score whose timestamp is not after the one
on record is not applied; ``stale_mode`` picks how the platform says so.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, Literal
from urllib.parse import urlencode

import jwt

from lms.auth import JWT_BEARER_ASSERTION
from lms.lti import LINEITEMS_MEDIA_TYPE, NRPS_MEDIA_TYPE, SCORE_MEDIA_TYPE
from tests.lms.fakes.dataset import Dataset, FakeAssignment, FakeEnrollment
from tests.lms.fakes.server import FakeLMSServer, RecordedRequest, Reply

TOKEN_PATH = "/lti/token"
SUBSECOND = re.compile(r"T\d{2}:\d{2}:\d{2}[.,]\d")
LIS = "http://purl.imsglobal.org/vocab/lis/v2/membership"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
AGS = "https://purl.imsglobal.org/spec/lti-ags/scope/"
LINEITEM_READ_SCOPES = {AGS + "lineitem", AGS + "lineitem.readonly"}
SCORE_SCOPE = AGS + "score"
ALL_SCOPES = frozenset({NRPS_SCOPE, SCORE_SCOPE, AGS + "result.readonly", *LINEITEM_READ_SCOPES})
ROLES = {
    "student": [f"{LIS}#Learner"],
    "teacher": [f"{LIS}#Instructor"],
    "ta": [f"{LIS}#Instructor", f"{LIS}/Instructor#TeachingAssistant"],
    "observer": [f"{LIS}#Mentor"],
    "designer": [f"{LIS}#ContentDeveloper"],
}
STATUS = {
    "active": "Active",
    "invited": "Inactive",
    "inactive": "Inactive",
    "completed": "Inactive",
}
PROGRESS = {"Initialized", "Started", "InProgress", "Submitted", "Completed"}
GRADING = {"FullyGraded", "Pending", "PendingManual", "Failed", "NotReady"}
StaleMode = Literal["409", "400", "canvas", "ignore"]


def iso(value: dt.datetime | None) -> str | None:
    return None if value is None else value.astimezone(dt.UTC).isoformat()


def oauth_error(error: str, description: str, status: int = 400) -> Reply:
    return Reply.json({"error": error, "error_description": description}, status)


class FakeLTIPlatform(FakeLMSServer):
    """A platform where the tool ``client_id`` is registered with ``tool_public_key``.

    ``applied_scores`` holds every score the platform applied and
    ``refused_scores`` every one it did not apply because of its timestamp.
    """

    name = "fake-lti"

    def __init__(
        self,
        data: Dataset | None = None,
        *,
        client_id: str = "tool-client-1",
        tool_public_key: Any,
        key_id: str | None = "tool-key-1",
        token_lifetime: int = 3600,
        page_size: int = 50,
        stale_mode: StaleMode = "409",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.data = data or Dataset()
        self.client_id = client_id
        self.tool_public_key = tool_public_key
        self.key_id = key_id
        self.token_lifetime = token_lifetime
        self.page_size = page_size
        self.stale_mode: StaleMode = stale_mode
        #: scores timestamped after this are refused as "in the future" (a clock off)
        self.future_after: dt.datetime | None = None
        self.clock = clock
        self.deadlines: dict[str, float] = {}
        self.scopes: dict[str, set[str]] = {}
        self.seen_jti: set[str] = set()
        self.applied_scores: list[dict[str, Any]] = []
        self.refused_scores: list[dict[str, Any]] = []
        self.unauthorized = 0
        context = r"/lti/contexts/(?P<context_id>[^/]+)"
        self.add_routes(
            [
                ("GET", context + r"/memberships", self._memberships),
                ("GET", context + r"/lineitems", self._lineitems),
                ("GET", context + r"/lineitems/(?P<item_id>[^/]+)", self._lineitem),
                ("POST", context + r"/lineitems/(?P<item_id>[^/]+)/scores", self._score),
            ]
        )

    @property
    def token_url(self) -> str:
        return self.base_url + TOKEN_PATH

    def context_options(self) -> list[dict[str, str]]:
        """``options["contexts"]`` as the tool would have stored them from launches."""
        return [
            {
                "id": course.id,
                "title": course.title,
                "memberships_url": f"{self.base_url}/lti/contexts/{course.id}/memberships",
                "lineitems_url": f"{self.base_url}/lti/contexts/{course.id}/lineitems",
            }
            for course in self.data.courses.values()
        ]

    def lineitem_url(self, assignment: FakeAssignment) -> str:
        return f"{self.base_url}/lti/contexts/{assignment.course_id}/lineitems/{assignment.id}"

    def expire_all_tokens(self) -> None:
        for token in list(self.tokens):
            self.expire_token(token)

    def token_requests(self) -> list[RecordedRequest]:
        return self.requests_to(TOKEN_PATH, "POST")

    # auth -------------------------------------------------------------------

    def handle(self, request: RecordedRequest) -> Reply:
        if request.path == TOKEN_PATH and request.method == "POST":
            return self._token(request)
        header = request.headers.get("authorization", "")
        token = header[len("Bearer ") :].strip() if header.startswith("Bearer ") else ""
        if token in self.tokens and self.clock() >= self.deadlines.get(token, 0.0):
            self.expire_token(token)
        if token not in self.tokens:
            self.unauthorized += 1
            headers = {"WWW-Authenticate": 'Bearer error="invalid_token"'}
            return Reply.json({"error": "invalid_token"}, 401, headers)
        request_scopes = self.scopes.get(token, set())
        needed = _needed_scopes(request)
        if needed and not needed & request_scopes:
            return Reply.json({"error": "insufficient_scope"}, 403)
        return super().handle(request)

    def _token(self, request: RecordedRequest) -> Reply:
        form = {key: values[0] for key, values in request.form().items()}
        if form.get("grant_type") != "client_credentials":
            return oauth_error("unsupported_grant_type", "grant_type must be client_credentials")
        if form.get("client_assertion_type") != JWT_BEARER_ASSERTION:
            return oauth_error("invalid_client", "client_assertion_type must be jwt-bearer", 401)
        problem = self._assertion_problem(form.get("client_assertion", ""))
        if problem is not None:
            return oauth_error("invalid_client", problem, 401)
        granted = set(form.get("scope", "").split()) & ALL_SCOPES
        if not granted:
            return oauth_error("invalid_scope", "no requested scope is allowed")
        token = self.issue_token()
        self.deadlines[token] = self.clock() + self.token_lifetime
        self.scopes[token] = granted
        body = {
            "access_token": token,
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "scope": " ".join(sorted(granted)),
        }
        return Reply.json(body)

    def _assertion_problem(self, assertion: str) -> str | None:
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self.tool_public_key,
                algorithms=["RS256"],
                audience=self.token_url,
                issuer=self.client_id,
                options={"require": ["iss", "sub", "aud", "iat", "exp", "jti"]},
            )
        except jwt.PyJWTError as exc:
            return f"client assertion rejected: {type(exc).__name__}"
        if self.key_id is not None and header.get("kid") != self.key_id:
            return "client assertion has an unknown kid"
        if claims["sub"] != self.client_id:
            return "client assertion sub is not the client_id"
        if claims["exp"] - claims["iat"] > 3600:
            return "client assertion lives longer than an hour"
        if claims["jti"] in self.seen_jti:
            return "client assertion jti was already used"
        self.seen_jti.add(claims["jti"])
        return None

    # paging -----------------------------------------------------------------

    def _page(self, request: RecordedRequest, items: list[Any]) -> tuple[list[Any], dict[str, str]]:
        limit = max(1, min(int(request.arg("limit") or self.page_size), self.page_size))
        page = max(1, int(request.arg("page") or 1))
        chunk = items[(page - 1) * limit : page * limit]
        headers: dict[str, str] = {}
        if page * limit < len(items):
            query = urlencode({"page": page + 1, "limit": limit})
            headers["Link"] = f'<{self.link_url}{request.path}?{query}>; rel="next"'
        return chunk, headers

    # NRPS -------------------------------------------------------------------

    def _memberships(self, request: RecordedRequest, context_id: str) -> Reply:
        course = self.data.courses.get(context_id)
        if course is None:
            return Reply.json({"error": "unknown context"}, 404)
        if NRPS_MEDIA_TYPE not in request.headers.get("accept", ""):
            return Reply.json({"error": "Accept must be the NRPS media type"}, 406)
        members = [self._member(e) for e in self.data.course_enrollments(course.id)]
        chunk, headers = self._page(request, members)
        body = {
            "id": f"{self.base_url}{request.path}",
            "context": {"id": course.id, "label": course.code, "title": course.title},
            "members": chunk,
        }
        return Reply(200, body, {"Content-Type": NRPS_MEDIA_TYPE, **headers})

    def _member(self, enrollment: FakeEnrollment) -> dict[str, Any]:
        user = self.data.users[enrollment.user_id]
        return {
            "status": STATUS.get(enrollment.state, "Deleted"),
            "name": user.name,
            "given_name": user.given_name,
            "family_name": user.family_name,
            "email": user.email,
            "user_id": user.id,
            "lis_person_sourcedid": user.username,
            "roles": ROLES[enrollment.role],
        }

    # AGS --------------------------------------------------------------------

    def _lineitems(self, request: RecordedRequest, context_id: str) -> Reply:
        course = self.data.courses.get(context_id)
        if course is None:
            return Reply.json({"error": "unknown context"}, 404)
        if LINEITEMS_MEDIA_TYPE not in request.headers.get("accept", ""):
            return Reply.json({"error": "Accept must be the line item container type"}, 406)
        items = [self._lineitem_body(a) for a in self.data.course_assignments(course.id)]
        chunk, headers = self._page(request, items)
        return Reply(200, chunk, {"Content-Type": LINEITEMS_MEDIA_TYPE, **headers})

    def _lineitem_body(self, assignment: FakeAssignment) -> dict[str, Any]:
        return {
            "id": self.lineitem_url(assignment),
            "label": assignment.title,
            "scoreMaximum": float(assignment.points_possible),
            "resourceId": f"quiz-{assignment.id}",
            "tag": "quiz",
            "startDateTime": iso(assignment.unlock_at),
            "endDateTime": iso(assignment.due_at),
        }

    def _assignment(self, context_id: str, item_id: str) -> FakeAssignment | None:
        assignment = self.data.assignments.get(item_id)
        return assignment if assignment and assignment.course_id == context_id else None

    def _lineitem(self, request: RecordedRequest, context_id: str, item_id: str) -> Reply:
        assignment = self._assignment(context_id, item_id)
        if assignment is None:
            return Reply.json({"error": "unknown line item"}, 404)
        return Reply.json(self._lineitem_body(assignment))

    def _score(self, request: RecordedRequest, context_id: str, item_id: str) -> Reply:
        assignment = self._assignment(context_id, item_id)
        if assignment is None:
            return Reply.json({"error": "unknown line item"}, 404)
        if request.headers.get("content-type", "").split(";")[0].strip() != SCORE_MEDIA_TYPE:
            return Reply.json({"error": "Content-Type must be the score media type"}, 415)
        try:
            score = request.json()
        except ValueError:
            return Reply.json({"error": "malformed JSON"}, 400)
        problem, when = _score_problem(score)
        if problem is not None or when is None:
            return Reply.json({"error": problem}, 400)
        if self.future_after is not None and when > self.future_after:
            message = f"Provided timestamp of {score['timestamp']} in the future"
            return Reply.json({"errors": [{"message": message}]}, 400)
        if self.data.enrollment_of(context_id, score["userId"]) is None:
            return Reply.json({"error": f"user {score['userId']} is not in the context"}, 422)
        state = self.data.grade(assignment.id, score["userId"])
        if state is not None and when <= state.graded_at:
            return self._refuse(score, when, state.graded_at)
        given = score.get("scoreGiven")
        value = None
        if given is not None:
            value = Decimal(str(given)) / Decimal(str(score["scoreMaximum"]))
            value *= assignment.points_possible
        self.data.set_grade(
            assignment.id,
            score["userId"],
            value,
            at=when,
            comment=score.get("comment"),
            source="api",
        )
        self.applied_scores.append(score)
        return Reply.json(
            {"resultUrl": f"{self.lineitem_url(assignment)}/results/{score['userId']}"}
        )

    def _refuse(self, score: dict[str, Any], when: dt.datetime, stored: dt.datetime) -> Reply:
        self.refused_scores.append(score)
        message = (
            f"Score timestamp {when.isoformat()} is not after the stored timestamp "
            f"{stored.isoformat()}"
        )
        if self.stale_mode == "409":
            return Reply.json({"error": "conflict", "message": message}, 409)
        if self.stale_mode == "400":
            return Reply.json({"errors": {"type": "bad_request", "message": message}}, 400)
        if self.stale_mode == "canvas":  # the wording of Canvas's Score API documentation
            message = (
                f"Provided timestamp of {when.isoformat()} before last updated timestamp "
                f"of {stored.isoformat(timespec='milliseconds')}"
            )
            return Reply.json({"errors": [{"message": message}]}, 400)
        return Reply(204)  # ignored, as the spec also allows


def _needed_scopes(request: RecordedRequest) -> set[str]:
    if request.path.endswith("/memberships"):
        return {NRPS_SCOPE}
    if request.path.endswith("/scores"):
        return {SCORE_SCOPE}
    return set(LINEITEM_READ_SCOPES)


def _score_problem(score: Any) -> tuple[str | None, dt.datetime | None]:
    if not isinstance(score, dict):
        return "score must be a JSON object", None
    if not isinstance(score.get("userId"), str):
        return "userId is required", None
    if score.get("activityProgress") not in PROGRESS:
        return "activityProgress is missing or invalid", None
    if score.get("gradingProgress") not in GRADING:
        return "gradingProgress is missing or invalid", None
    given, maximum = score.get("scoreGiven"), score.get("scoreMaximum")
    if given is not None:
        if not isinstance(given, int | float) or given < 0:
            return "scoreGiven must be a non-negative number", None
        if not isinstance(maximum, int | float) or maximum <= 0:
            return "scoreMaximum is required with scoreGiven and must be positive", None
    text = str(score.get("timestamp"))
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        return "timestamp must be ISO 8601", None
    if not SUBSECOND.search(text):  # AGS 2.0, 3.4.9: "MUST ... with a sub-second precision"
        return "timestamp must be ISO 8601 with sub-second precision", None
    if when.utcoffset() is None:
        return "timestamp must carry a UTC offset", None
    return None, when
