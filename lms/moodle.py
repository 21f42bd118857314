"""Moodle over Web Services REST (``/webservice/rest/server.php``).

Every call is a POST of ``wstoken`` plus PHP-style array arguments, so the
token never sits in a URL or an access log.  Moodle reports failures as HTTP
200 with ``{"exception", "errorcode", "message"}``; such a body is never a
success: database and maintenance errors are ``LMSUnavailable``, everything
else (bad token, missing capability, bad parameter) ``LMSRequestRejected``.
Grades go through ``mod_assign_save_grade`` with ``addattempt=0``, so a
retried grade never opens a new student attempt, and ``applytoall=0``: in a
group assignment, 1 applies the grade "to all members of the group", and one
pupil's quiz score overwrote every teammate's grade.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from lms.base import (
    Assignment,
    ConnectionConfig,
    Course,
    GradeOutcome,
    GradeSubmission,
    LMSClient,
    RosterEntry,
    RosterRole,
)
from lms.http import LMSHttp
from lms.messages import require_object, scrub
from lms.paging import PageRepeats
from lms.values import plain, scaled_score, strict_decimal, unix_time, utc
from models.errors import (
    ConfigurationError,
    LMSAuthRejected,
    LMSRequestRejected,
    LMSUnavailable,
    ValidationFailed,
)

log = logging.getLogger(__name__)

ENDPOINT = "/webservice/rest/server.php"
PAGE_SIZE = 200
SITE_FORMAT = "site"  # the front page is a course too; it is not a class
#: Course role shortnames, most privileged first: a user's first match wins.
ROLES: tuple[tuple[str, RosterRole], ...] = (
    ("manager", "admin"),
    ("coursecreator", "admin"),
    ("editingteacher", "teacher"),
    ("teacher", "ta"),  # Moodle's "teacher" is the non-editing teacher
    ("student", "student"),
    ("parent", "observer"),
    ("guest", "observer"),
)
TRANSIENT_EXCEPTIONS = frozenset(
    {
        "dml_connection_exception",
        "dml_read_exception",
        "dml_sessionwait_exception",
        "dml_transaction_exception",
        "dml_write_exception",
    }
)
#: The token is unknown, expired or disabled: Moodle's HTTP 200 for what others answer 401.
AUTH_ERRORCODES = frozenset({"invalidtoken"})
TRANSIENT_ERRORCODES = frozenset(
    {"dbconnectionfailed", "dmlreadexception", "dmlwriteexception", "sitemaintenance"}
)
SCORE_TOLERANCE = Decimal("0.005")


def flatten(args: Mapping[Any, Any], prefix: str = "") -> dict[str, str]:
    """Nested arguments as Moodle's ``name[0][key]=value`` form fields."""
    fields: dict[str, str] = {}
    for key, value in args.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, Mapping):
            fields.update(flatten(value, name))
        elif isinstance(value, list | tuple):
            fields.update(flatten(dict(enumerate(value)), name))
        elif isinstance(value, bool):
            fields[name] = "1" if value else "0"
        else:
            fields[name] = str(value)
    return fields


class MoodleClient(LMSClient):
    """Courses, enrolled users, assignments and grades through one web service token."""

    platform: ClassVar[str] = "moodle"
    secret_keys: ClassVar[frozenset[str]] = frozenset({"api_key"})

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
            raise ConfigurationError("Moodle needs credentials.api_key (the web service token)")
        self._token = token
        self.http = LMSHttp(
            config.base_url,
            timeout=config.timeout_seconds,
            max_retries=config.max_retries,
            headers={"Accept": "application/json"},
            sleep=sleep,
            transport=transport,
        )
        self._points: dict[tuple[str, str], Decimal | None] = {}

    def close(self) -> None:
        self.http.close()

    def call(self, function: str, **args: Any) -> Any:
        """Run one web service function and return its decoded result."""
        url = f"{ENDPOINT}?wsfunction={function}&moodlewsrestformat=json"
        body = self.http.send_json("POST", url, data={"wstoken": self._token, **flatten(args)})
        if isinstance(body, dict) and "exception" in body:
            code, kind = str(body.get("errorcode") or ""), str(body.get("exception"))
            message = scrub(
                f"Moodle {function} failed: {code}: {body.get('message')}", [self._token]
            )
            if kind in TRANSIENT_EXCEPTIONS or code in TRANSIENT_ERRORCODES:
                raise LMSUnavailable(message)
            if code in AUTH_ERRORCODES:
                raise LMSAuthRejected(message)  # grades wait for the operator's new token
            raise LMSRequestRejected(message)
        return body

    def list_courses(self) -> Iterator[Course]:
        where = "core_course_get_courses"
        courses = self.call(where)
        if not isinstance(courses, list):
            raise ValidationFailed(f"{where}: expected a list of courses")
        for item in courses:
            course = require_object(item, where, "id")
            if course.get("format") == SITE_FORMAT:
                continue
            start, end = (
                unix_time(course.get("startdate"), where),
                unix_time(course.get("enddate"), where),
            )
            yield Course(
                external_id=str(course["id"]),
                title=str(course.get("fullname") or course.get("shortname") or course["id"]),
                description=course.get("summary") or None,
                start_date=start.date() if start else None,
                end_date=end.date() if end else None,
                raw=course,
            )

    def list_roster(self, course_external_id: str) -> Iterator[RosterEntry]:
        """Enrolled users; suspended enrolments come back as ``inactive``."""
        suspended = {
            str(user["id"]) for user in self._enrolled(course_external_id, onlysuspended=1)
        }
        for user in self._enrolled(course_external_id):
            role = _role(user.get("roles"))
            if role is None:
                log.warning("skipping Moodle user %s: no known course role", user["id"])
                continue
            user_id = str(user["id"])
            yield RosterEntry(
                external_user_id=user_id,
                role=role,
                state="inactive" if user_id in suspended else "active",
                given_name=user.get("firstname") or None,
                family_name=user.get("lastname") or None,
                email=user.get("email") or None,
                username=user.get("username") or None,
                raw=user,
            )

    def list_assignments(self, course_external_id: str) -> Iterator[Assignment]:
        where = "mod_assign_get_assignments"
        body = require_object(self.call(where, courseids=[course_external_id]), where)
        for warning in body.get("warnings") or []:
            log.warning("Moodle %s warning: %s", where, warning)
        for course in body.get("courses") or []:
            if str(require_object(course, where, "id")["id"]) != course_external_id:
                continue
            for item in course.get("assignments") or []:
                assignment = _assignment(require_object(item, where, "id"), where)
                self._points[(course_external_id, assignment.external_id)] = (
                    assignment.points_possible
                )
                yield assignment

    def submit_grade(self, grade: GradeSubmission) -> GradeOutcome:
        """Save the grade unless Moodle already holds it, or a newer grade."""
        assignment_id, user_id = grade.assignment_external_id, grade.external_user_id
        target = scaled_score(
            grade, self._assignment_points(grade.course_external_id, assignment_id)
        )

        def check() -> GradeOutcome | None:
            held, modified = self._current_grade(assignment_id, user_id)
            if held is not None and abs(held - target) <= SCORE_TOLERANCE:
                return GradeOutcome(already_applied=True, detail="Moodle already holds this grade")
            if held is not None and modified is not None and modified > utc(grade.timestamp):
                return GradeOutcome(already_applied=True, detail="Moodle holds a newer grade; kept")
            return None

        def write() -> GradeOutcome:
            args: dict[str, Any] = {
                "assignmentid": assignment_id,
                "userid": user_id,
                "grade": plain(target),
                "attemptnumber": -1,
                "addattempt": 0,
                "workflowstate": "",
                "applytoall": 0,  # 1 gives every member of the student's group this grade
            }
            if grade.comment:
                editor = {"text": grade.comment, "format": 1}
                args["plugindata"] = {"assignfeedbackcomments_editor": editor}
            self.call("mod_assign_save_grade", **args)
            return GradeOutcome(detail=f"saved grade {plain(target)}")

        return self.http.checked_write(check, write)

    def _enrolled(self, course_id: str, **options: Any) -> Iterator[dict[str, Any]]:
        where = "core_enrol_get_enrolled_users"
        start = 0
        repeats = PageRepeats()
        while True:
            paging = {"limitfrom": start, "limitnumber": PAGE_SIZE, **options}
            users = self.call(
                where,
                courseid=course_id,
                options=[{"name": name, "value": value} for name, value in paging.items()],
            )
            if not isinstance(users, list):
                raise ValidationFailed(f"{where}: expected a list of users")
            repeats.check(users, f"{where} of course {course_id}", f" at limitfrom {start}",
                          "the server ignores limitfrom")  # fmt: skip
            for user in users:
                yield require_object(user, where, "id")
            if len(users) < PAGE_SIZE:
                return
            start += len(users)

    def _current_grade(
        self, assignment_id: str, user_id: str
    ) -> tuple[Decimal | None, dt.datetime | None]:
        """The latest attempt's grade and when it changed; Moodle writes -1 for "no grade"."""
        where = "mod_assign_get_grades"
        body = require_object(self.call(where, assignmentids=[assignment_id], since=0), where)
        latest: dict[str, Any] | None = None
        for block in body.get("assignments") or []:
            if str(require_object(block, where).get("assignmentid")) != assignment_id:
                continue
            for row in block.get("grades") or []:
                if isinstance(row, dict) and str(row.get("userid")) == user_id:
                    if latest is None or int(row.get("attemptnumber") or 0) >= int(
                        latest.get("attemptnumber") or 0
                    ):
                        latest = row
        if latest is None:
            return None, None
        held = strict_decimal(latest.get("grade"), where)
        if held is not None and held < 0:
            held = None
        return held, unix_time(latest.get("timemodified"), where)

    def _assignment_points(self, course_id: str, assignment_id: str) -> Decimal | None:
        if (course_id, assignment_id) not in self._points:
            for _ in self.list_assignments(course_id):
                pass
        return self._points.get((course_id, assignment_id))


def _assignment(item: Mapping[str, Any], where: str) -> Assignment:
    points = strict_decimal(item.get("grade"), where)
    return Assignment(
        external_id=str(item["id"]),
        title=str(item.get("name") or item["id"]),
        description=item.get("intro") or None,
        assignment_type="assign",
        points_possible=points if points is not None and points > 0 else None,  # <0: a scale
        due_at=unix_time(item.get("duedate"), where),
        unlock_at=unix_time(item.get("allowsubmissionsfromdate"), where),
        lock_at=unix_time(item.get("cutoffdate"), where),
        raw=item,
    )


def _role(roles: Any) -> RosterRole | None:
    names = {str(role.get("shortname")) for role in roles or [] if isinstance(role, dict)}
    return next((role for shortname, role in ROLES if shortname in names), None)
