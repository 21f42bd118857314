"""Schoology over its REST API (``/v1``), signed with two-legged OAuth 1.0a.

Sections are the courses (``/v1/users/{uid}/sections`` of the API user named
by ``options["user_id"]``).  Lists page with ``start``/``limit`` and follow
``links.next`` in the body.  Grades are keyed by enrollment id, so the client
looks up the student's enrollment in the section; it reads the grade first and
writes only when Schoology holds neither this score nor a newer grade.

Schoology allows a consumer key 50 requests in any 5 seconds and answers HTTP
429 past that (the limit as integrators quote it; Schoology's API pages do not
state it, and a district's key may differ).  The client paces itself to it
(``lms.pacing``) rather than meet the 429s: ``options.requests_per_window`` in
``options.window_seconds`` (whole seconds, at most a minute: a longer window
would put a worker to sleep that long in the middle of a sync).

authlib's httpx integration binds to the separate ``httpx2`` package whenever
that is installed (langsmith pulls it in), so its ``OAuth1Auth`` cannot sign an
``httpx`` request.  ``OAuth1Signer`` is a thin ``httpx.Auth`` over authlib's own
``ClientAuth``: the signing stays authlib's.  Schoology signs the method and
URL only; JSON bodies are not part of the signature.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Generator, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from authlib.oauth1 import ClientAuth

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
)
from lms.http import LMSHttp
from lms.messages import require_object
from lms.pacing import RollingWindow
from lms.paging import PageRepeats, cut_short, next_page_url
from lms.values import plain, scaled_score, strict_decimal, unix_time, utc
from models.errors import ConfigurationError, LMSRequestRejected, ValidationFailed
from models.redaction import redact

log = logging.getLogger(__name__)

PAGE_LIMIT = 200  # Schoology's maximum page size
STATUSES: Mapping[str, EnrollmentState] = {
    "1": "active",
    "2": "inactive",  # expired
    "3": "invited",  # invite pending
    "4": "invited",  # request pending
    "5": "completed",  # archived
}
SCORE_TOLERANCE = Decimal("0.005")
# A grade's ``exception``: "If exception > 0 then grade will be set to NULL. Right now
# the only exceptions that exist are 1 for 'excused' & 2 for 'incomplete'"
# (developers.schoology.com/api-documentation/rest-api-v1/grade).
EXCEPTIONS: Mapping[str, str] = {"1": "excused", "2": "incomplete"}
_OK_CODES = frozenset({200, 201, 204})
REALM = "Schoology API"
REQUESTS_PER_WINDOW = 50  # per consumer key ...
WINDOW_SECONDS = 5  # ... in any 5 seconds
LONGEST_WINDOW = 60


class _TwoLeggedAuth(ClientAuth):  # type: ignore[misc]  # authlib ships no type hints
    """authlib's ``ClientAuth`` with the empty ``oauth_token`` that Schoology's two-legged
    requests carry: "For two-legged OAuth requests, the oauth_token still needs to be
    defined" (developers.schoology.com/api-documentation/authentication).  authlib
    leaves a blank token out; here it is signed and sent as ``oauth_token=""``."""

    def get_oauth_params(self, nonce: str, timestamp: str) -> list[tuple[str, str]]:
        params: list[tuple[str, str]] = super().get_oauth_params(nonce, timestamp)
        return [*params, ("oauth_token", "")]


class OAuth1Signer(httpx.Auth):
    """Two-legged OAuth 1.0a (HMAC-SHA1) for ``httpx``, signed by authlib, in the header
    Schoology documents: ``OAuth realm="Schoology API", ..., oauth_token="", ...``."""

    def __init__(self, consumer_key: str, consumer_secret: str) -> None:
        self.consumer_key = consumer_key
        self._client_auth = _TwoLeggedAuth(consumer_key, consumer_secret, realm=REALM)

    def __repr__(self) -> str:
        return f"OAuth1Signer(consumer_key={self.consumer_key!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        headers: dict[str, str] = {}
        if "Content-Type" in request.headers:
            headers["Content-Type"] = request.headers["Content-Type"]
        _, signed, _ = self._client_auth.prepare(
            request.method, str(request.url), headers, request.content
        )
        request.headers["Authorization"] = signed["Authorization"]
        yield request


class SchoologyClient(LMSClient):
    """Sections, enrollments, assignments and grades visible to one API user."""

    platform: ClassVar[str] = "schoology"
    secret_keys: ClassVar[frozenset[str]] = frozenset({"client_secret"})
    option_keys: ClassVar[frozenset[str]] = frozenset(
        {"user_id", "timezone", "requests_per_window", "window_seconds"}
    )

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(config)
        key, secret = config.credentials.client_id, config.credentials.client_secret
        if not key:
            raise ConfigurationError("Schoology needs credentials.client_id (the consumer key)")
        if not secret:
            raise ConfigurationError("Schoology needs credentials.client_secret (consumer secret)")
        user_id = option.text(config.options, "user_id", "Schoology", numbers=True)
        if not user_id:
            raise ConfigurationError("Schoology needs options.user_id (the API user's uid)")
        self.user_id = user_id
        try:
            self.timezone = ZoneInfo(option.text(config.options, "timezone", "Schoology") or "UTC")
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigurationError("Schoology options.timezone is not a known zone") from None
        self.pacer = RollingWindow(
            option.whole(
                config.options,
                "requests_per_window",
                "Schoology",
                default=REQUESTS_PER_WINDOW,
                minimum=1,
            ),
            option.whole(
                config.options,
                "window_seconds",
                "Schoology",
                default=WINDOW_SECONDS,
                minimum=1,
                maximum=LONGEST_WINDOW,
            ),
            clock=clock,
            sleep=sleep,
        )
        base_url = config.base_url.rstrip("/").removesuffix("/v1")
        self.http = LMSHttp(
            base_url,
            timeout=config.timeout_seconds,
            max_retries=config.max_retries,
            auth=OAuth1Signer(key, secret),
            headers={"Accept": "application/json"},
            sleep=sleep,
            transport=transport,
            pacer=self.pacer,
        )
        self._enrollments: dict[str, dict[str, str]] = {}
        self._points: dict[tuple[str, str], Decimal | None] = {}

    def close(self) -> None:
        self.http.close()

    def list_courses(self) -> Iterator[Course]:
        for item in self._pages(f"/v1/users/{_seg(self.user_id)}/sections", "section"):
            title = str(item.get("course_title") or item["id"])
            if item.get("section_title"):
                title = f"{title}: {item['section_title']}"
            yield Course(
                external_id=str(item["id"]),
                title=title,
                description=item.get("description") or None,
                raw=item,
            )

    def list_roster(self, course_external_id: str) -> Iterator[RosterEntry]:
        ids: dict[str, str] = {}
        for item in self._pages(
            f"/v1/sections/{_seg(course_external_id)}/enrollments", "enrollment"
        ):
            uid = str(item.get("uid") or "")
            state = STATUSES.get(str(item.get("status")))
            if not uid or state is None:
                log.warning(
                    "skipping Schoology enrollment %s: status %r", item["id"], item.get("status")
                )
                continue
            ids[uid] = str(item["id"])
            yield RosterEntry(
                external_user_id=uid,
                role="teacher" if str(item.get("admin")) == "1" else "student",
                state=state,
                given_name=item.get("name_first_preferred") or item.get("name_first") or None,
                family_name=item.get("name_last") or None,
                email=item.get("primary_email") or None,
                username=item.get("username") or item.get("school_uid") or None,
                raw=item,
            )
        self._enrollments[course_external_id] = ids

    def list_assignments(self, course_external_id: str) -> Iterator[Assignment]:
        path = f"/v1/sections/{_seg(course_external_id)}/assignments"
        for item in self._pages(path, "assignment"):
            assignment = self._assignment(item, path)
            self._points[(course_external_id, assignment.external_id)] = assignment.points_possible
            yield assignment

    def submit_grade(self, grade: GradeSubmission) -> GradeOutcome:
        """PUT the grade unless Schoology already holds it, or a newer grade."""
        section, assignment_id = grade.course_external_id, grade.assignment_external_id
        enrollment_id = self._enrollment_id(section, grade.external_user_id)
        target = scaled_score(grade, self._assignment_points(section, assignment_id))
        path = f"/v1/sections/{_seg(section)}/grades"

        def check() -> GradeOutcome | None:
            query = {"assignment_id": assignment_id, "enrollment_id": enrollment_id}
            body = self.http.get_json(path, params=query)
            row = _grade_row(body, path, assignment_id, enrollment_id) or {}
            held = strict_decimal(row.get("grade"), path)
            changed = unix_time(row.get("timestamp"), path)
            if held is not None and abs(held - target) <= SCORE_TOLERANCE:
                return GradeOutcome(
                    already_applied=True, detail="Schoology already holds this grade"
                )
            newer = changed is not None and changed > utc(grade.timestamp)
            if held is not None and newer:
                return GradeOutcome(
                    already_applied=True, detail="Schoology holds a newer grade; kept"
                )
            if newer and _excepted(row):  # excused (or so) by the teacher after the attempt
                marked = EXCEPTIONS.get(str(row["exception"]), "an exception")
                return GradeOutcome(
                    already_applied=True, detail=f"Schoology holds a newer grade ({marked}); kept"
                )
            return None

        def write() -> GradeOutcome:
            item: dict[str, Any] = {
                "type": "assignment",
                "assignment_id": assignment_id,
                "enrollment_id": enrollment_id,
                "grade": float(target),
            }
            if grade.comment:
                item["comment"] = grade.comment
            result = self.http.send_json("PUT", path, json={"grades": {"grade": [item]}})
            _check_put(result, path)
            return GradeOutcome(detail=f"graded {plain(target)}")

        return self.http.checked_write(check, write)

    def _pages(self, path: str, key: str) -> Iterator[dict[str, Any]]:
        """Items of a ``start``/``limit`` list, following ``links.next`` until ``total``.

        An empty page while ``total`` is not reached (or, without one, with a
        ``links.next``) is refused (``cut_short``), not taken for the end.
        """
        url, where, seen = path, f"GET {path}", 0
        params: dict[str, int] | None = {"start": 0, "limit": PAGE_LIMIT}
        repeats = PageRepeats()
        while True:
            response = self.http.request("GET", url, params=params)
            body = require_object(self.http.decode(response), where)
            items = body.get(key) or []
            if not isinstance(items, list):
                raise ValidationFailed(f"{where}: {key!r} is not a list")
            page = f"GET {redact(str(response.request.url))}"
            repeats.check(items, page, f" at start {seen}", "links.next does not move on")
            links = body.get("links")
            links = links if isinstance(links, dict) else {}
            next_url, total = links.get("next"), str(body.get("total"))
            if not items:
                promise = _more_promised(total, seen, bool(next_url))
                if promise is not None:
                    raise cut_short(page, f"start {seen}", promise)
                return
            for item in items:
                yield require_object(item, where, "id")
            seen += len(items)
            if not next_url or (total.isdigit() and seen >= int(total)):
                return
            url = str(next_page_url(response.request.url, str(next_url), "links.next"))
            params = None

    def _assignment(self, item: Mapping[str, Any], path: str) -> Assignment:
        return Assignment(
            external_id=str(item["id"]),
            title=str(item.get("title") or item["id"]),
            description=item.get("description") or None,
            assignment_type=item.get("type") or None,
            points_possible=strict_decimal(item.get("max_points"), path),
            due_at=self._local_time(item.get("due"), path),
            raw=item,
        )

    def _local_time(self, value: Any, where: str) -> dt.datetime | None:
        """Schoology writes ``YYYY-MM-DD HH:MM:SS`` in the school's zone (``options.timezone``)."""
        if not value:
            return None
        try:
            parsed = dt.datetime.fromisoformat(str(value))
        except ValueError:
            raise ValidationFailed(f"{where}: unreadable time {value!r}") from None
        return parsed.replace(tzinfo=self.timezone) if parsed.tzinfo is None else parsed

    def _enrollment_id(self, section: str, uid: str) -> str:
        """The student's enrollment id in ``section``, listing the section once if needed."""
        if uid not in self._enrollments.get(section, {}):
            for _ in self.list_roster(section):
                pass
        enrollment_id = self._enrollments.get(section, {}).get(uid)
        if enrollment_id is None:
            raise LMSRequestRejected(
                f"Schoology section {section} has no enrollment for user {uid}"
            )
        return enrollment_id

    def _assignment_points(self, section: str, assignment_id: str) -> Decimal | None:
        key = (section, assignment_id)
        if key not in self._points:
            path = f"/v1/sections/{_seg(section)}/assignments/{_seg(assignment_id)}"
            item = require_object(self.http.get_json(path), f"GET {path}", "id")
            self._points[key] = strict_decimal(item.get("max_points"), path)
        return self._points[key]


def _more_promised(total: str, read: int, has_next: bool) -> str | None:
    """What says more items follow an empty page, after ``read``: a ``total`` above it, or,
    without a total, a ``links.next``; ``None`` when nothing does."""
    if total.isdigit():
        return f"its total says {total} items" if read < int(total) else None
    return "its links.next names a next page" if has_next else None


def _excepted(row: Mapping[str, Any]) -> bool:
    """Whether the grade row holds an exception (excused, incomplete) instead of a grade:
    its ``timestamp`` is then when the teacher set it."""
    code = str(row.get("exception") or 0)
    return code.isdigit() and int(code) > 0


def _grade_row(
    body: Any, path: str, assignment_id: str, enrollment_id: str
) -> dict[str, Any] | None:
    grades = require_object(body, f"GET {path}").get("grades") or {}
    rows = grades.get("grade") if isinstance(grades, dict) else None
    for row in rows or []:
        if (
            isinstance(row, dict)
            and str(row.get("assignment_id")) == assignment_id
            and str(row.get("enrollment_id")) == enrollment_id
        ):
            return row
    return None


def _check_put(result: Any, path: str) -> None:
    """Schoology answers per grade; a refused item is a refused request."""
    if result is None:
        return
    grades = require_object(result, f"PUT {path}").get("grades")
    rows = grades.get("grade") if isinstance(grades, dict) else None
    for row in rows if isinstance(rows, list) else []:
        code = str(row.get("response_code", "200")) if isinstance(row, dict) else "200"
        if code.isdigit() and int(code) not in _OK_CODES:
            message = row.get("message") or "no message"
            raise LMSRequestRejected(
                f"PUT {path}: Schoology refused the grade: {message}", status_code=int(code)
            )


def _seg(value: str) -> str:
    return quote(value, safe="")
