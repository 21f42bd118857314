"""A fake Moodle Web Services REST endpoint over a ``Dataset``.

One URL, ``/webservice/rest/server.php``, takes ``wstoken``, ``wsfunction``
and ``moodlewsrestformat`` from the query or a form body, PHP-style array
parameters (``courseids[0]=5``), and answers every failure the way Moodle
does: HTTP 200 with ``{"exception", "errorcode", "message"}``.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from decimal import Decimal, InvalidOperation
from typing import Any

from tests.lms.fakes.dataset import Dataset, FakeAssignment, FakeEnrollment
from tests.lms.fakes.server import FakeLMSServer, Fault, RecordedRequest, Reply

ENDPOINT = "/webservice/rest/server.php"
SITE_COURSE_ID = 1
ROLES = {
    "student": (5, "student"),
    "teacher": (3, "editingteacher"),
    "ta": (4, "teacher"),
    "designer": (1, "manager"),
    "observer": (6, "guest"),
}
LISTED_STATES = ("active", "invited", "inactive", "completed")
_KEY_PART = re.compile(r"\[([^\]]*)\]")


def moodle_error(exception: str, errorcode: str, message: str) -> dict[str, str]:
    return {"exception": exception, "errorcode": errorcode, "message": message}


INVALID_TOKEN = moodle_error("moodle_exception", "invalidtoken", "Invalid token - token not found")
INVALID_PARAMETER = moodle_error(
    "invalid_parameter_exception", "invalidparameter", "Invalid parameter value detected"
)


def nest(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """PHP-style ``a[0][name]=x`` pairs as nested dicts and lists."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        head, _, rest = key.partition("[")
        parts = [head, *_KEY_PART.findall("[" + rest)] if rest else [head]
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return {key: _listify(value) for key, value in root.items()}


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items


def timestamp(value: dt.datetime | None) -> int:
    return int(value.timestamp()) if value is not None else 0


def midnight(day: dt.date | None) -> dt.datetime | None:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC) if day is not None else None


class FakeMoodle(FakeLMSServer):
    """Moodle over ``data``; ``token`` is a valid web service token from the start."""

    name = "fake-moodle"

    def __init__(self, data: Dataset | None = None) -> None:
        super().__init__()
        self.data = data or Dataset()
        self.token = self.issue_token()
        self.group_assignments: set[str] = set()
        """Assignments submitted in groups, each course's students one group: a grade saved
        with ``applytoall=1`` goes to every one of them, as Moodle's does to the group."""
        self.functions: dict[str, Callable[[dict[str, Any]], Any]] = {
            "core_course_get_courses": self._courses,
            "core_enrol_get_enrolled_users": self._enrolled_users,
            "mod_assign_get_assignments": self._assignments,
            "mod_assign_get_grades": self._grades,
            "mod_assign_save_grade": self._save_grade,
        }
        self.add_routes([("GET", ENDPOINT, self._call), ("POST", ENDPOINT, self._call)])

    def error_body(
        self,
        times: int = 1,
        *,
        errorcode: str = "dmlreadexception",
        exception: str = "dml_read_exception",
        message: str = "Error reading from database",
        function: str | None = None,
    ) -> Fault:
        """Answer the next calls (of ``function``) with a Moodle HTTP-200 error body."""

        def match(request: RecordedRequest) -> bool:
            return function is None or _params(request).get("wsfunction") == function

        reply = Reply.json(moodle_error(exception, errorcode, message))
        return self.inject(Fault(times, reply, match=match))

    def not_found(self, request: RecordedRequest) -> Reply:
        return Reply.text("404 Not Found", 404)

    def _call(self, request: RecordedRequest) -> Reply:
        params = _params(request)
        if params.get("wstoken") not in self.tokens:
            return Reply.json(INVALID_TOKEN)
        if params.get("moodlewsrestformat") != "json":
            xml = '<?xml version="1.0" encoding="UTF-8" ?>\n<RESPONSE></RESPONSE>\n'
            return Reply(200, xml, {"Content-Type": "application/xml; charset=utf-8"})
        function = self.functions.get(str(params.get("wsfunction")))
        if function is None:
            return Reply.json(
                moodle_error(
                    "dml_missing_record_exception",
                    "invalidrecord",
                    "Can't find data record in database table external_functions.",
                )
            )
        try:
            return Reply.json(function(params))
        except (KeyError, ValueError, TypeError, InvalidOperation):
            return Reply.json(INVALID_PARAMETER)

    # functions ----------------------------------------------------------------

    def _courses(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        site = {
            "id": SITE_COURSE_ID,
            "shortname": "site",
            "fullname": "Fake Moodle",
            "format": "site",
        }
        rows = [site]
        for course in self.data.courses.values():
            rows.append(
                {
                    "id": int(course.id),
                    "shortname": course.code,
                    "fullname": course.title,
                    "displayname": course.title,
                    "categoryid": 1,
                    "summary": course.description,
                    "summaryformat": 1,
                    "format": "topics",
                    "startdate": timestamp(midnight(course.start)),
                    "enddate": timestamp(midnight(course.end)),
                    "visible": 1,
                }
            )
        return rows

    def _enrolled_users(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        course_id = str(params["courseid"])
        if course_id not in self.data.courses:
            raise KeyError(course_id)
        options = {o["name"]: o["value"] for o in params.get("options", [])}
        suspended_only = options.get("onlysuspended") in ("1", "true")
        active_only = options.get("onlyactive") in ("1", "true")
        rows = [
            self._user(e)
            for e in self.data.course_enrollments(course_id)
            if e.state in LISTED_STATES
            and (not suspended_only or e.state != "active")
            and (not active_only or e.state == "active")
        ]
        start = int(options.get("limitfrom", 0))
        limit = int(options.get("limitnumber", 0))
        return rows[start : start + limit] if limit else rows[start:]

    def _user(self, enrollment: FakeEnrollment) -> dict[str, Any]:
        user = self.data.users[enrollment.user_id]
        role_id, shortname = ROLES[enrollment.role]
        return {
            "id": int(user.id),
            "username": user.username,
            "firstname": user.given_name,
            "lastname": user.family_name,
            "fullname": user.name,
            "email": user.email,
            "roles": [{"roleid": role_id, "name": "", "shortname": shortname, "sortorder": 0}],
        }

    def _assignments(self, params: dict[str, Any]) -> dict[str, Any]:
        courses = []
        for course_id in map(str, params.get("courseids", [])):
            course = self.data.courses.get(course_id)
            if course is None:
                continue
            assignments = [self._assignment(a) for a in self.data.course_assignments(course_id)]
            courses.append(
                {
                    "id": int(course_id),
                    "fullname": course.title,
                    "shortname": course.code,
                    "assignments": assignments,
                }
            )
        return {"courses": courses, "warnings": []}

    def _assignment(self, assignment: FakeAssignment) -> dict[str, Any]:
        return {
            "id": int(assignment.id),
            "cmid": int(assignment.id) + 500_000,
            "course": int(assignment.course_id),
            "name": assignment.title,
            "intro": assignment.description,
            "introformat": 1,
            "grade": int(assignment.points_possible),
            "duedate": timestamp(assignment.due_at),
            "allowsubmissionsfromdate": timestamp(assignment.unlock_at),
            "cutoffdate": timestamp(assignment.lock_at),
        }

    def _grades(self, params: dict[str, Any]) -> dict[str, Any]:
        since = int(params.get("since", 0))
        found, warnings = [], []
        for assignment_id in map(str, params["assignmentids"]):
            grades = [
                {
                    "id": index + 1,
                    "assignment": int(assignment_id),
                    "userid": int(user_id),
                    "attemptnumber": state.attempts - 1,
                    "timecreated": timestamp(state.graded_at),
                    "timemodified": timestamp(state.graded_at),
                    "grader": 2,
                    "grade": f"{state.score if state.score is not None else -1:.5f}",
                }
                for index, ((graded_assignment, user_id), state) in enumerate(
                    self.data.grades.items()
                )
                if graded_assignment == assignment_id and timestamp(state.graded_at) >= since
            ]
            if grades:
                found.append({"assignmentid": int(assignment_id), "grades": grades})
            else:
                warnings.append(
                    {
                        "item": "assignment",
                        "itemid": int(assignment_id),
                        "warningcode": "3",
                        "message": "No grades found",
                    }
                )
        return {"assignments": found, "warnings": warnings}

    def _save_grade(self, params: dict[str, Any]) -> None:
        assignment = self.data.assignments[str(params["assignmentid"])]
        user_id = str(params["userid"])
        enrollment = self.data.enrollment_of(assignment.course_id, user_id)
        if enrollment is None or enrollment.role != "student":
            raise KeyError(user_id)
        score = Decimal(str(params["grade"]))
        comment = ((params.get("plugindata") or {}).get("assignfeedbackcomments_editor") or {}).get(
            "text"
        )
        members = [user_id]  # applytoall is required: without it, invalidparameter
        if _flag(params["applytoall"]) and assignment.id in self.group_assignments:
            members = [e.user_id for e in self.data.course_enrollments(assignment.course_id)
                       if e.role == "student" and e.state != "deleted"]  # fmt: skip
        for member in members:
            self.data.set_grade(
                assignment.id,
                member,
                score,
                comment=comment or None,
                source="api",
                add_attempt=_flag(params.get("addattempt", "0")),
            )
        return None


def _flag(value: Any) -> bool:
    """A ``PARAM_BOOL`` as Moodle reads it."""
    return str(value) in ("1", "true")


def _params(request: RecordedRequest) -> dict[str, Any]:
    pairs = [(k, v) for k, vs in request.query.items() for v in vs]
    return nest([*pairs, *request.form_pairs()])
