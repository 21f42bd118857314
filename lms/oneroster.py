"""OneRoster 1.2 client: classes and enrollments from Rostering, results to Gradebook.

Classes are the courses a teacher teaches, so they become ``Course`` records.
Collections page with ``limit``/``offset`` and ``X-Total-Count``.  A result
is PUT at the grade's deterministic ``sourcedId`` so a retry rewrites the
same resource, and it is not written when the gradebook already holds a
result for that student and line item scored at or after our ``scoreDate``
(checked again before a retry, since a lost answer may hide a PUT that landed).
Responses are checked for the required fields this client reads; the full
check against the official OpenAPI document runs in the tests.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Literal
from urllib.parse import quote

import httpx

from lms import options as option
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
from lms.values import decimal_or_none, iso_date, iso_datetime, json_number, scaled_score
from models.errors import ConfigurationError, LMSRequestRejected, ValidationFailed

ROSTERING_PATH = "/ims/oneroster/rostering/v1p2"
GRADEBOOK_PATH = "/ims/oneroster/gradebook/v1p2"
SCOPES: tuple[str, ...] = (
    "https://purl.imsglobal.org/spec/or/v1p2/scope/roster-core.readonly",
    "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.readonly",
    "https://purl.imsglobal.org/spec/or/v1p2/scope/gradebook.createput",
)
ROLE_MAP: Mapping[str, RosterRole] = {
    "student": "student",
    "teacher": "teacher",
    "administrator": "admin",
    "proctor": "ta",
}
_CLASS_FIELDS = ("sourcedId", "status", "title")
_ENROLLMENT_FIELDS = ("sourcedId", "status", "user", "class", "role")
_USER_FIELDS = ("sourcedId", "status", "givenName", "familyName")
#: Required strings that may be empty: a person known by one name has a familyName of "".
_NAME_FIELDS = frozenset({"givenName", "familyName"})
_LINE_ITEM_FIELDS = ("sourcedId", "status", "title")
_RESULT_FIELDS = ("sourcedId", "status", "scoreDate")


class OneRosterClient(LMSClient):
    """One OneRoster 1.2 provider (an SIS or a rostering hub)."""

    platform: ClassVar[str] = "oneroster"
    secret_keys: ClassVar[frozenset[str]] = frozenset({"client_secret"})
    option_keys: ClassVar[frozenset[str]] = frozenset(
        {"rostering_path", "gradebook_path", "page_size", "token_auth", "scopes"}
    )

    def __init__(
        self,
        config: ConnectionConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        today: Callable[[], dt.date] = lambda: dt.datetime.now(dt.UTC).date(),
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(config)
        if not config.token_endpoint:
            raise ConfigurationError("token_endpoint is required for OneRoster")
        options = config.options
        rostering = option.text(options, "rostering_path", "OneRoster") or ROSTERING_PATH
        gradebook = option.text(options, "gradebook_path", "OneRoster") or GRADEBOOK_PATH
        self.rostering, self.gradebook = rostering.rstrip("/"), gradebook.rstrip("/")
        self.page_size = option.whole(options, "page_size", "OneRoster", default=100, minimum=1)
        token_auth = option.choice(options, "token_auth", "OneRoster", choices=("basic", "post"))
        method: Literal["basic", "post"] = "post" if token_auth == "post" else "basic"
        self.tokens: TokenProvider = client_secret_provider(
            config.token_endpoint,
            config.credentials.client_id,
            config.credentials.client_secret,
            method=method,
            scopes=option.scopes(options, "scopes", "OneRoster", default=SCOPES),
            timeout=config.timeout_seconds,
            sleep=sleep,
            clock=clock,
            transport=transport,
        )
        self.http = token_http(config, self.tokens, sleep=sleep, transport=transport)
        self._today = today
        self._result_max: dict[str, Decimal | None] = {}

    def list_courses(self) -> Iterator[Course]:
        url = f"{self.rostering}/classes"
        for item in self._collection(url, "classes", _CLASS_FIELDS):
            if item["status"] != "active":
                continue
            yield Course(
                external_id=item["sourcedId"],
                title=item["title"],
                subject=_first_str(item.get("subjects")),
                grade_level=_grade_level(item.get("grades")),
                raw=item,
            )

    def list_roster(self, course_external_id: str) -> Iterator[RosterEntry]:
        users = self._class_users(course_external_id)
        url = f"{self.rostering}/enrollments"
        params = {"filter": _filter("class.sourcedId", course_external_id)}
        for item in self._collection(url, "enrollments", _ENROLLMENT_FIELDS, params):
            user_id = _ref_id(item, "user", url)
            user = users.get(user_id) or self._user(user_id)
            yield self._roster_entry(item, user, url)

    def list_assignments(self, course_external_id: str) -> Iterator[Assignment]:
        url = f"{self.gradebook}/classes/{_seg(course_external_id)}/lineItems"
        for item in self._collection(url, "lineItems", _LINE_ITEM_FIELDS):
            if item["status"] != "active":
                continue
            points = decimal_or_none(item.get("resultValueMax"))
            self._result_max[item["sourcedId"]] = points
            yield Assignment(
                external_id=item["sourcedId"],
                title=item["title"],
                description=item.get("description") or None,
                points_possible=points,
                unlock_at=iso_datetime(item.get("assignDate")),
                due_at=iso_datetime(item.get("dueDate")),
                raw=item,
            )

    def submit_grade(self, grade: GradeSubmission) -> GradeOutcome:
        """PUT the result unless the gradebook holds it or a newer one; re-checked on retry."""
        if grade.timestamp.utcoffset() is None:
            raise ValidationFailed("GradeSubmission.timestamp must carry a UTC offset")
        url = f"{self.gradebook}/results/{_seg(grade.sourced_id)}"
        body = {"result": self._result_body(grade)}

        def check() -> GradeOutcome | None:
            newest = self._newest_result(grade)
            if newest is None or newest[0] < grade.timestamp:
                return None
            same = newest[1] == grade.sourced_id
            detail = "this result is already stored" if same else "a newer result is stored"
            return GradeOutcome(already_applied=True, detail=detail)

        def write() -> GradeOutcome:
            self.http.request("PUT", url, json=body)
            return GradeOutcome()

        return self.http.checked_write(check, write)

    def _result_body(self, grade: GradeSubmission) -> dict[str, Any]:
        """The ``ResultDType`` we PUT; identical on every retry of one grade."""
        stamp = grade.timestamp.isoformat()
        body: dict[str, Any] = {
            "sourcedId": grade.sourced_id,
            "status": "active",
            "dateLastModified": stamp,
            "lineItem": self._ref("lineItems", grade.assignment_external_id, "lineItem"),
            "student": self._ref("users", grade.external_user_id, "user", rostering=True),
            "class": self._ref("classes", grade.course_external_id, "class", rostering=True),
            "scoreStatus": "fully graded",
            "score": json_number(
                scaled_score(grade, self._line_item_max(grade.assignment_external_id))
            ),
            "scoreDate": stamp,
        }
        if grade.comment:
            body["comment"] = grade.comment
        return body

    def close(self) -> None:
        self.http.close()
        self.tokens.close()

    def _collection(
        self,
        url: str,
        key: str,
        required: tuple[str, ...],
        params: Mapping[str, Any] | None = None,
    ) -> Iterator[Mapping[str, Any]]:
        pages = self.http.iter_offset_pages(url, items_key=key, params=params, limit=self.page_size)
        for page in pages:
            for item in page:
                yield _checked(item, required, f"{url} {key}[]")

    def _class_users(self, class_id: str) -> dict[str, Mapping[str, Any]]:
        """Names and emails of a class in two paged calls instead of one per user."""
        users: dict[str, Mapping[str, Any]] = {}
        for kind in ("students", "teachers"):
            url = f"{self.rostering}/classes/{_seg(class_id)}/{kind}"
            for user in self._collection(url, "users", _USER_FIELDS):
                users[user["sourcedId"]] = user
        return users

    def _user(self, user_id: str) -> Mapping[str, Any] | None:
        url = f"{self.rostering}/users/{_seg(user_id)}"
        try:
            body = self.http.get_json(url)
        except LMSRequestRejected as exc:
            if exc.status_code == 404:
                return None  # enrolled but gone from the SIS: keep the enrollment
            raise
        user = body.get("user") if isinstance(body, Mapping) else None
        return _checked(user, _USER_FIELDS, f"{url} user")

    def _roster_entry(
        self, item: Mapping[str, Any], user: Mapping[str, Any] | None, url: str
    ) -> RosterEntry:
        user = user or {}
        return RosterEntry(
            external_user_id=_ref_id(item, "user", url),
            role=ROLE_MAP.get(str(item["role"]), "observer"),
            state=self._state(item, user),
            given_name=user.get("givenName") or None,
            family_name=user.get("familyName") or None,
            email=user.get("email") or None,
            username=user.get("username") or None,
            raw=item,
        )

    def _state(self, item: Mapping[str, Any], user: Mapping[str, Any]) -> EnrollmentState:
        if item["status"] != "active" or user.get("status") == "tobedeleted":
            return "dropped"
        today = self._today()
        end, begin = iso_date(item.get("endDate")), iso_date(item.get("beginDate"))
        if end is not None and end <= today:  # endDate is exclusive
            return "completed"
        if (begin is not None and begin > today) or user.get("enabledUser") in (False, "false"):
            return "inactive"
        return "active"

    def _newest_result(self, grade: GradeSubmission) -> tuple[dt.datetime, str] | None:
        """The latest active result for this student and line item, if any."""
        url = f"{self.gradebook}/results"
        predicate = " AND ".join(
            (
                _filter("lineItem.sourcedId", grade.assignment_external_id),
                _filter("student.sourcedId", grade.external_user_id),
            )
        )
        newest: tuple[dt.datetime, str] | None = None
        for item in self._collection(url, "results", _RESULT_FIELDS, {"filter": predicate}):
            if item["status"] != "active":
                continue
            when = iso_datetime(item["scoreDate"])
            if when is None:
                raise ValidationFailed(f"{url}: result {item['sourcedId']!r} has a bad scoreDate")
            if when.utcoffset() is None:
                when = when.replace(tzinfo=dt.UTC)  # a bare date is taken as UTC midnight
            if newest is None or when > newest[0]:
                newest = (when, item["sourcedId"])
        return newest

    def _line_item_max(self, line_item_id: str) -> Decimal | None:
        if line_item_id not in self._result_max:
            url = f"{self.gradebook}/lineItems/{_seg(line_item_id)}"
            body = self.http.get_json(url)
            item = body.get("lineItem") if isinstance(body, Mapping) else None
            checked = _checked(item, _LINE_ITEM_FIELDS, f"{url} lineItem")
            self._result_max[line_item_id] = decimal_or_none(checked.get("resultValueMax"))
        return self._result_max[line_item_id]

    def _ref(
        self, kind: str, sourced_id: str, type_: str, *, rostering: bool = False
    ) -> dict[str, str]:
        root = self.rostering if rostering else self.gradebook
        href = f"{self.config.base_url.rstrip('/')}{root}/{kind}/{_seg(sourced_id)}"
        return {"href": href, "sourcedId": sourced_id, "type": type_}


def _checked(item: Any, required: tuple[str, ...], where: str) -> Mapping[str, Any]:
    if not isinstance(item, Mapping):
        raise ValidationFailed(f"{where}: expected a JSON object")
    for name in required:
        value = item.get(name)
        if value is None or (value == "" and name not in _NAME_FIELDS):
            raise ValidationFailed(f"{where}: required field '{name}' is missing")
        if name in _NAME_FIELDS and not isinstance(value, str):
            raise ValidationFailed(f"{where}: field '{name}' is not a string")
    return item


def _ref_id(item: Mapping[str, Any], key: str, url: str) -> str:
    ref = item.get(key)
    sourced_id = ref.get("sourcedId") if isinstance(ref, Mapping) else None
    if not isinstance(sourced_id, str) or not sourced_id:
        raise ValidationFailed(f"{url}: required field '{key}.sourcedId' is missing")
    return sourced_id


def _filter(field: str, value: str) -> str:
    if "'" in value:
        raise ValidationFailed(f"cannot filter on {field}: the value contains a quote")
    return f"{field}='{value}'"


def _seg(value: str) -> str:
    return quote(value, safe="")


def _first_str(value: Any) -> str | None:
    if isinstance(value, list) and value and isinstance(value[0], str):
        return value[0]
    return None


def _grade_level(value: Any) -> int | None:
    first = _first_str(value)
    if first is None:
        return None
    if first.upper() == "KG":
        return 0
    return int(first) if first.isdigit() else None
