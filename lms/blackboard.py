"""Blackboard Learn REST API client.

Learn authenticates an application with OAuth2 client credentials (the REST
application key and secret sent as HTTP Basic) and issues one-hour tokens.
Collections page through ``paging.nextPage`` in the body, a host-relative URL
that already carries the offset, so it is followed verbatim (one naming
another host is refused, so the token never leaves the server).

A course whose ``availability.available`` is ``Disabled`` is not listed: the
SIS (or an administrator) disabled it, and Learn locks it and hides it from its
users, instructors too.  Left out, the sync marks it as it marks a deleted one,
its roster and assignments with it; ``No`` (private) and ``Term`` stay courses.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from lms.auth import TokenProvider, client_secret_provider, token_http
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
from lms.paging import PageRepeats, next_page_url
from lms.values import decimal_or_none, iso_date, iso_datetime, json_number, scaled_score
from models.errors import LMSRequestRejected, ValidationFailed

log = logging.getLogger(__name__)

TOKEN_PATH = "/learn/api/public/v1/oauth2/token"
COURSES_PATH = "/learn/api/public/v3/courses"
MEMBERSHIPS_PATH = "/learn/api/public/v1/courses/{course}/users"
COLUMNS_PATH = "/learn/api/public/v2/courses/{course}/gradebook/columns"
GRADE_PATH = COLUMNS_PATH + "/{column}/users/{user}"
# Scores travel as JSON floats, so a scaled 2/3 comes back rounded.
SCORE_TOLERANCE = Decimal("0.000001")

# Course roles that ship with Learn; institution-defined roles fall back to
# "observer" so an unknown role never gets grading rights by accident.
ROLE_MAP: Mapping[str, RosterRole] = {
    "Student": "student",
    "Instructor": "teacher",
    "TeachingAssistant": "ta",
    "Grader": "ta",
    "CourseBuilder": "ta",
    "Guest": "observer",
}
DISABLED = "Disabled"
"""Learn's ``available`` of a disabled record: a course or a membership locked and hidden."""
AVAILABILITY_MAP: Mapping[str, EnrollmentState] = {
    "Yes": "active",
    "No": "inactive",
    DISABLED: "dropped",
}


class BlackboardClient(LMSClient):
    """Courses, memberships and gradebook columns of one Learn server."""

    platform: ClassVar[str] = "blackboard"
    secret_keys: ClassVar[frozenset[str]] = frozenset({"client_secret"})

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(config)
        # below the base URL's path, as every API call is (Learn may sit under a path prefix)
        token_url = config.token_endpoint or config.base_url.rstrip("/") + TOKEN_PATH
        self.tokens: TokenProvider = client_secret_provider(
            token_url,
            config.credentials.client_id,
            config.credentials.client_secret,
            method="basic",
            timeout=config.timeout_seconds,
            sleep=sleep,
            clock=clock,
            transport=transport,
        )
        self.http = token_http(config, self.tokens, sleep=sleep, transport=transport)
        self._column_points: dict[tuple[str, str], Decimal | None] = {}

    def list_courses(self) -> Iterator[Course]:
        for item in self._pages(COURSES_PATH, {"fields": _COURSE_FIELDS}):
            if item.get("organization") is True:
                continue  # organizations are communities, not classes
            if _mapping(item.get("availability")).get("available") == DISABLED:
                course_id = _required_str(item, "id", COURSES_PATH)
                log.info("Blackboard course %s is disabled in Learn; not synced", course_id)
                continue
            yield _course(item, COURSES_PATH)

    def list_roster(self, course_external_id: str) -> Iterator[RosterEntry]:
        url = MEMBERSHIPS_PATH.format(course=_seg(course_external_id))
        for item in self._pages(url, {"expand": "user"}):
            yield _member(item, url)

    def list_assignments(self, course_external_id: str) -> Iterator[Assignment]:
        url = COLUMNS_PATH.format(course=_seg(course_external_id))
        for item in self._pages(url, None):
            grading = _mapping(item.get("grading"))
            if grading.get("type") == "Calculated":
                continue  # totals and weighted columns cannot take a passed-back grade
            assignment = _assignment(item, url)
            self._column_points[(course_external_id, assignment.external_id)] = (
                assignment.points_possible
            )
            yield assignment

    def submit_grade(self, grade: GradeSubmission) -> GradeOutcome:
        """PATCH the score unless Learn already holds it; re-checked before any retry.

        Learn keeps no score timestamp, so ordering between two different
        grades for the same column and user is the passback queue's job.
        """
        url = GRADE_PATH.format(
            course=_seg(grade.course_external_id),
            column=_seg(grade.assignment_external_id),
            user=_seg(grade.external_user_id),
        )
        score = scaled_score(grade, self._points(grade))
        body: dict[str, Any] = {"score": json_number(score)}
        if grade.comment:
            body["feedback"] = grade.comment

        def check() -> GradeOutcome | None:
            current = self._current_score(url)
            if current is not None and abs(current - score) <= SCORE_TOLERANCE:
                return GradeOutcome(already_applied=True, detail="Learn already holds this score")
            return None

        def write() -> GradeOutcome:
            self.http.send_json("PATCH", url, json=body)
            return GradeOutcome()

        return self.http.checked_write(check, write)

    def close(self) -> None:
        self.http.close()
        self.tokens.close()

    def _pages(self, url: str, params: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
        seen: set[str] = set()
        repeats = PageRepeats()
        next_url: str | None = url
        while next_url is not None:
            if next_url in seen:
                raise ValidationFailed(f"{next_url}: paging.nextPage repeats a page")
            seen.add(next_url)
            response = self.http.request("GET", next_url, params=params)
            body = _mapping(self.http.decode(response), next_url, "body")
            results = body.get("results")
            if not isinstance(results, list):
                raise ValidationFailed(f"{next_url}: 'results' is missing or not a list")
            repeats.check(results, next_url, cause="paging.nextPage does not move on")
            for item in results:
                yield _mapping(item, next_url, "results[]")
            paging = _mapping(body.get("paging"))
            nxt = paging.get("nextPage")
            next_url = nxt if isinstance(nxt, str) and nxt else None
            if next_url is not None:  # a relative one stays below the base URL's path
                next_page_url(response.request.url, next_url, "paging.nextPage")
            params = None  # nextPage already carries every query parameter

    def _points(self, grade: GradeSubmission) -> Decimal | None:
        key = (grade.course_external_id, grade.assignment_external_id)
        if key not in self._column_points:
            url = COLUMNS_PATH.format(course=_seg(key[0])) + f"/{_seg(key[1])}"
            column = _mapping(self.http.get_json(url), url, "body")
            self._column_points[key] = decimal_or_none(
                _mapping(column.get("score")).get("possible")
            )
        return self._column_points[key]

    def _current_score(self, url: str) -> Decimal | None:
        try:
            body = self.http.get_json(url)
        except LMSRequestRejected as exc:
            if exc.status_code == 404:
                return None  # no grade recorded yet
            raise
        return decimal_or_none(_mapping(body).get("score"))


_COURSE_FIELDS = "id,courseId,externalId,name,description,organization,availability"


def _course(item: Mapping[str, Any], url: str) -> Course:
    duration = _mapping(_mapping(item.get("availability")).get("duration"))
    return Course(
        external_id=_required_str(item, "id", url),
        title=_required_str(item, "name", url),
        description=item.get("description") or None,
        start_date=iso_date(duration.get("start")),
        end_date=iso_date(duration.get("end")),
        raw=item,
    )


def _member(item: Mapping[str, Any], url: str) -> RosterEntry:
    user = _mapping(item.get("user"))
    name = _mapping(user.get("name"))
    contact = _mapping(user.get("contact"))
    role_id = _required_str(item, "courseRoleId", url)
    available = _mapping(item.get("availability")).get("available", "Yes")
    return RosterEntry(
        external_user_id=_required_str(item, "userId", url),
        role=ROLE_MAP.get(role_id, "observer"),
        state=AVAILABILITY_MAP.get(str(available), "inactive"),
        given_name=name.get("given"),
        family_name=name.get("family"),
        email=contact.get("email"),
        username=user.get("userName"),
        raw=item,
    )


def _assignment(item: Mapping[str, Any], url: str) -> Assignment:
    grading = _mapping(item.get("grading"))
    return Assignment(
        external_id=_required_str(item, "id", url),
        title=_required_str(item, "name", url),
        description=item.get("description") or None,
        assignment_type=grading.get("type"),
        points_possible=decimal_or_none(_mapping(item.get("score")).get("possible")),
        due_at=iso_datetime(grading.get("due")),
        raw=item,
    )


def _seg(value: str) -> str:
    return quote(value, safe=":")  # Learn ids such as "courseId:BIO-101" keep their colon


def _mapping(value: Any, url: str | None = None, what: str = "") -> Mapping[str, Any]:
    if isinstance(value, Mapping):
        return value
    if url is not None:
        raise ValidationFailed(f"{url}: {what} is not a JSON object")
    return {}


def _required_str(item: Mapping[str, Any], key: str, url: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value:
        raise ValidationFailed(f"{url}: field '{key}' is missing or not a string")
    return value
