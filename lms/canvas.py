"""Canvas LMS over its REST API (``/api/v1``) with a bearer access token.

Lists follow ``Link: rel="next"`` (Canvas may omit ``rel="last"``) and the
``X-Rate-Limit-Remaining`` cost bucket paces us.  A grade is written with
``submission[posted_grade]``: grading through this endpoint never opens a
student attempt (that is what ``new_submission=false`` guards in LTI AGS), and
the submission is read first, so a score already there, or a grade newer than
ours, is reported as applied instead of written again.  A course the token may
not open for now (``access_restricted_by_date``: Canvas lists its id, perhaps
its name, and answers 401 for its enrollments and assignments) is a
``restricted`` course, its missing fields never read as blanks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from lms import options as option
from lms.base import (
    Assignment,
    ConnectionConfig,
    Course,
    EnrollmentState,
    GradeOutcome,
    GradeSubmission,
    LMSClient,
    RosterEntry,
    RosterRole,
)
from lms.http import LMSHttp
from lms.messages import require_object
from lms.values import plain, scaled_score, strict_bool, strict_decimal, strict_iso_datetime, utc
from models.errors import ConfigurationError, ValidationFailed

log = logging.getLogger(__name__)

PER_PAGE = 100
#: Pause before the next call once fewer cost units than this remain (bucket holds 700).
DEFAULT_THROTTLE_THRESHOLD = 150
COURSE_INCLUDES = ("term", "teachers", "public_description")
#: Every state, so drops show up as drops instead of vanishing (Canvas lists active+invited).
ENROLLMENT_QUERY_STATES = (
    "active",
    "invited",
    "creation_pending",
    "inactive",
    "completed",
    "deleted",
    "rejected",
)
ROLES: Mapping[str, RosterRole] = {
    "StudentEnrollment": "student",
    "TeacherEnrollment": "teacher",
    "TaEnrollment": "ta",
    "ObserverEnrollment": "observer",
    "DesignerEnrollment": "admin",  # builds content, neither learns nor grades
}
STATES: Mapping[str, EnrollmentState] = {
    "active": "active",
    "invited": "invited",
    "creation_pending": "invited",
    "inactive": "inactive",
    "completed": "completed",
    "deleted": "dropped",
    "rejected": "dropped",
}
_STATE_RANK = {"active": 0, "invited": 1, "inactive": 2, "completed": 3, "dropped": 4}
#: Scores closer than this are the same grade (Canvas stores floats).
SCORE_TOLERANCE = Decimal("0.005")


class CanvasClient(LMSClient):
    """Courses, enrollments, assignments and grades of one Canvas instance."""

    platform: ClassVar[str] = "canvas"
    secret_keys: ClassVar[frozenset[str]] = frozenset({"api_key"})
    option_keys: ClassVar[frozenset[str]] = frozenset({"account_id", "throttle_threshold"})

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(config)
        token = config.credentials.api_key
        if not token:
            raise ConfigurationError("Canvas needs credentials.api_key (an API access token)")
        threshold = option.whole(
            config.options,
            "throttle_threshold",
            "Canvas",
            default=DEFAULT_THROTTLE_THRESHOLD,
            minimum=0,
        )
        self.account = option.text(config.options, "account_id", "Canvas", numbers=True)
        self.http = LMSHttp(
            config.base_url,
            timeout=config.timeout_seconds,
            max_retries=config.max_retries,
            headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
            sleep=sleep,
            transport=transport,
            throttle_threshold=threshold,
            refused=token_refused,
        )

    def close(self) -> None:
        self.http.close()

    def list_courses(self) -> Iterator[Course]:
        """The token user's courses, or an account's when ``options["account_id"]`` is set."""
        account = self.account
        path = f"/api/v1/accounts/{_seg(account)}/courses" if account else "/api/v1/courses"
        params = {"per_page": PER_PAGE, "include[]": list(COURSE_INCLUDES)}
        for page in self.http.iter_link_pages(path, params=params):
            for item in page:
                yield _course(require_object(item, f"GET {path}", "id"), path)

    def list_roster(self, course_external_id: str) -> Iterator[RosterEntry]:
        """One entry per user and role; a user in several sections keeps the liveliest state."""
        path = f"/api/v1/courses/{_seg(course_external_id)}/enrollments"
        params = {"per_page": PER_PAGE, "state[]": list(ENROLLMENT_QUERY_STATES)}
        best: dict[tuple[str, str], RosterEntry] = {}
        for page in self.http.iter_link_pages(path, params=params):
            for item in page:
                entry = _roster_entry(require_object(item, f"GET {path}", "user_id", "type"))
                if entry is None:
                    continue
                key = (entry.external_user_id, entry.role)
                held = best.get(key)
                if held is None or _STATE_RANK[entry.state] < _STATE_RANK[held.state]:
                    best[key] = entry
        yield from best.values()

    def list_assignments(self, course_external_id: str) -> Iterator[Assignment]:
        path = f"/api/v1/courses/{_seg(course_external_id)}/assignments"
        for page in self.http.iter_link_pages(path, params={"per_page": PER_PAGE}):
            for item in page:
                yield _assignment(require_object(item, f"GET {path}", "id"), path)

    def submit_grade(self, grade: GradeSubmission) -> GradeOutcome:
        """PUT the score unless the submission already holds it, or a newer grade."""
        path = (
            f"/api/v1/courses/{_seg(grade.course_external_id)}"
            f"/assignments/{_seg(grade.assignment_external_id)}"
            f"/submissions/{_seg(grade.external_user_id)}"
        )
        target = grade.score

        def check() -> GradeOutcome | None:
            nonlocal target
            current = require_object(
                self.http.get_json(path, params={"include[]": ["assignment"]}), f"GET {path}"
            )
            assignment = _obj(current.get("assignment"))
            target = scaled_score(grade, strict_decimal(assignment.get("points_possible"), path))
            return _held(current, target, grade, path)

        def write() -> GradeOutcome:
            data = {"submission[posted_grade]": plain(target)}
            if grade.comment:
                data["comment[text_comment]"] = grade.comment
            written = require_object(self.http.send_json("PUT", path, data=data), f"PUT {path}")
            stored = strict_decimal(written.get("score"), path)
            if stored is None or abs(stored - target) > SCORE_TOLERANCE:
                raise ValidationFailed(f"PUT {path}: Canvas answered score {stored}, sent {target}")
            return GradeOutcome(detail=f"posted score {plain(target)}")

        return self.http.checked_write(check, write)


def token_refused(response: httpx.Response) -> bool:
    """A 401 that refuses the token itself (invalid, expired, revoked): Canvas marks it with
    ``WWW-Authenticate``.  A 401 without it refuses one resource to a valid token ("user not
    authorized to perform that action", a course restricted by date): that course fails."""
    return response.status_code == 401 and "WWW-Authenticate" in response.headers


def _held(
    current: Mapping[str, Any], target: Decimal, grade: GradeSubmission, path: str
) -> GradeOutcome | None:
    """An outcome when the submission already holds ``target`` or a newer grade."""
    held = strict_decimal(current.get("score"), path)
    if held is None:
        return None
    if abs(held - target) <= SCORE_TOLERANCE:
        return GradeOutcome(already_applied=True, detail="Canvas already holds this score")
    graded_at = strict_iso_datetime(current.get("graded_at"), path)
    if graded_at is not None and graded_at > utc(grade.timestamp):
        when = graded_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return GradeOutcome(
            already_applied=True,
            detail=f"Canvas holds a newer grade ({plain(held)}, graded {when}); kept",
        )
    return None


def _course(item: Mapping[str, Any], path: str) -> Course:
    if strict_bool(item.get("access_restricted_by_date"), f"{path} access_restricted_by_date"):
        # Only the id (perhaps the name) is shown: the missing fields are unknown, not empty.
        name = item.get("name")
        return Course(
            external_id=str(item["id"]), title=str(name or item["id"]), raw=item, restricted=True
        )
    term = _obj(item.get("term"))
    teachers = [t for t in item.get("teachers") or [] if isinstance(t, dict)]
    start = strict_iso_datetime(item.get("start_at") or term.get("start_at"), path)
    end = strict_iso_datetime(item.get("end_at") or term.get("end_at"), path)
    return Course(
        external_id=str(item["id"]),
        title=str(item.get("name") or item.get("course_code") or item["id"]),
        description=item.get("public_description") or None,
        instructor_name=teachers[0].get("display_name") if teachers else None,
        start_date=start.date() if start else None,
        end_date=end.date() if end else None,
        raw=item,
    )


def _roster_entry(item: Mapping[str, Any]) -> RosterEntry | None:
    role = ROLES.get(str(item["type"]))
    state = STATES.get(str(item.get("enrollment_state")))
    if role is None or state is None:
        log.warning(
            "skipping Canvas enrollment %s: type %r, state %r",
            item.get("id"),
            item["type"],
            item.get("enrollment_state"),
        )
        return None
    user = _obj(item.get("user"))
    family, _, given = str(user.get("sortable_name") or "").partition(",")
    return RosterEntry(
        external_user_id=str(item["user_id"]),
        role=role,
        state=state,
        given_name=given.strip() or user.get("short_name") or None,
        family_name=family.strip() or None,
        email=user.get("email") or None,
        username=user.get("login_id") or None,
        raw=item,
    )


def _assignment(item: Mapping[str, Any], path: str) -> Assignment:
    types = [str(t) for t in item.get("submission_types") or []]
    return Assignment(
        external_id=str(item["id"]),
        title=str(item.get("name") or item["id"]),
        description=item.get("description") or None,
        assignment_type=",".join(types) or None,
        points_possible=strict_decimal(item.get("points_possible"), path),
        due_at=strict_iso_datetime(item.get("due_at"), path),
        unlock_at=strict_iso_datetime(item.get("unlock_at"), path),
        lock_at=strict_iso_datetime(item.get("lock_at"), path),
        raw=item,
    )


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _seg(value: Any) -> str:
    """One URL path segment (Canvas also takes ``sis_course_id:...`` ids)."""
    return quote(str(value), safe=":")
