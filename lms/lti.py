"""LTI 1.3 Advantage client: rosters by NRPS, assignments and scores by AGS.

LTI has no "list courses" call: a platform only tells a tool about a context
(course) when it is launched there, and the launch carries that context's
NRPS memberships URL and AGS line items URL.  The integration therefore lists
its contexts in ``ConnectionConfig.options["contexts"]``, filled from
launches, e.g.::

    {"contexts": [{"id": "ctx-1", "title": "Biology",
                   "memberships_url": "https://lms/.../memberships",
                   "lineitems_url": "https://lms/.../lineitems"}],
     "key_id": "tool-key-2024"}

``add`` and ``update`` check those URLs as they check the endpoints
(``option_urls``).  Other options: ``key_id`` (the ``kid`` of the tool's
JWKS key), ``scopes`` and ``token_audience`` (when the platform wants an
``aud`` other than its token URL; not called, so not checked as a URL).
Scores carry the grade's fixed timestamp; the platform must not apply one
that is not newer than what it holds, and such a refusal (409, or a 400/422
that names the timestamp) means the grade or a newer one is already there.
A platform that silently ignores a stale score answers 2xx, which
cannot be told apart from an applied one and is reported as applied; the
platform still keeps the newer grade.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import httpx

from lms import options as option
from lms.auth import LTI_SCOPES, JWTAssertionGrant, TokenProvider, token_http
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
from lms.paging import PageRepeats, next_page_url, origin, parse_link_header
from lms.values import iso_datetime, json_number, strict_decimal
from models.errors import ConfigurationError, LMSRequestRejected, ValidationFailed

NRPS_MEDIA_TYPE = "application/vnd.ims.lti-nrps.v2.membershipcontainer+json"
LINEITEMS_MEDIA_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
#: The URLs of a context's services (NRPS, AGS), in ``options["contexts"]``.
SERVICE_URLS = ("memberships_url", "lineitems_url")

_LIS = "http://purl.imsglobal.org/vocab/lis/v2/"
# Roles a person holds across the institution or the platform, not in this context: the
# LIS v2 vocabularies and LTI 1.1's URNs, which platforms still send (Canvas's
# "urn:lti:instrole:ims/lis/Instructor" is any teacher of the account, the
# "urn:lti:role:ims/lis/..." URNs are the context roles).
_NOT_CONTEXT_ROLES = (
    _LIS + "institution/",
    _LIS + "system/",
    "urn:lti:instrole:",
    "urn:lti:sysrole:",
)
# Context roles by their last segment; a sub-role such as
# membership/Instructor#TeachingAssistant is looked up by the part after "#".
_CONTEXT_ROLES: Mapping[str, RosterRole] = {
    "Learner": "student",
    "Member": "student",
    "Instructor": "teacher",
    "TeachingAssistant": "ta",
    "Grader": "ta",
    "ContentDeveloper": "ta",
    "Administrator": "admin",
    "Manager": "admin",
    "Mentor": "observer",
}
_ROLE_PRIORITY: tuple[RosterRole, ...] = ("ta", "teacher", "admin", "student", "observer")
_STATUS_MAP: Mapping[str, EnrollmentState] = {
    "Active": "active",
    "Inactive": "inactive",
    "Deleted": "dropped",
}
# HTTP statuses with which platforms refuse a score whose timestamp is not
# newer than the stored one: 409 is what the AGS spec suggests; others use a
# 400/422 that says so.
_STALE_STATUS = 409
_STALE_MESSAGE_STATUSES = frozenset({400, 422})
# what such a 400/422 says: Canvas "... before last updated timestamp of ...",
# others "not after" / "older than" / "earlier than" the stored one
_STALE_WORDS = re.compile(r"\b(before|older|earlier|prior|not after|not newer|not later)\b")


class LTIAdvantageClient(LMSClient):
    """NRPS and AGS services of the contexts an LTI 1.3 tool was launched in."""

    platform: ClassVar[str] = "lti"
    secret_keys: ClassVar[frozenset[str]] = frozenset({"private_key_pem"})
    option_keys: ClassVar[frozenset[str]] = frozenset(
        {"contexts", "key_id", "scopes", "token_audience"}
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
        self.contexts = _contexts(config.options)
        creds = config.credentials
        if not config.token_endpoint:
            raise ConfigurationError("token_endpoint is required for LTI Advantage")
        if not creds.client_id:
            raise ConfigurationError("credentials.client_id is required for LTI Advantage")
        if not creds.private_key_pem:
            raise ConfigurationError("credentials.private_key_pem is required for LTI Advantage")
        grant = JWTAssertionGrant(
            client_id=creds.client_id,
            private_key_pem=creds.private_key_pem,
            key_id=option.text(config.options, "key_id", "LTI Advantage"),
            audience=option.text(config.options, "token_audience", "LTI Advantage"),
        )
        self.tokens = TokenProvider(
            config.token_endpoint,
            grant,
            scopes=option.scopes(config.options, "scopes", "LTI Advantage", default=LTI_SCOPES),
            timeout=config.timeout_seconds,
            sleep=sleep,
            clock=clock,
            transport=transport,
        )
        self.http = token_http(config, self.tokens, sleep=sleep, transport=transport)

    def list_courses(self) -> Iterator[Course]:
        """The configured contexts; one launched without the NRPS or the AGS claim (the
        platform offers that service in no context, or not in this one) has no
        ``memberships_url`` or ``lineitems_url``, and that part of it is not read."""
        for context in self.contexts.values():
            title = context.get("title") or context.get("label") or context["id"]
            yield Course(
                external_id=context["id"],
                title=str(title),
                raw=context,
                has_roster=context.get("memberships_url") is not None,
                has_assignments=context.get("lineitems_url") is not None,
            )

    def list_roster(self, course_external_id: str) -> Iterator[RosterEntry]:
        url = self._service_url(course_external_id, "memberships_url")
        repeats = PageRepeats()
        for page_url, body in self._link_pages(url, NRPS_MEDIA_TYPE):
            members = _mapping(body, page_url).get("members")
            if not isinstance(members, list):
                raise ValidationFailed(f"{page_url}: 'members' is missing or not a list")
            repeats.check(members, page_url)
            for member in members:
                entry = _member(_mapping(member, page_url), page_url)
                if entry is not None:
                    yield entry

    def list_assignments(self, course_external_id: str) -> Iterator[Assignment]:
        url = self._service_url(course_external_id, "lineitems_url")
        repeats = PageRepeats()
        for page_url, body in self._link_pages(url, LINEITEMS_MEDIA_TYPE):
            if not isinstance(body, list):
                raise ValidationFailed(f"{page_url}: the line item container is not a list")
            repeats.check(body, page_url)
            for item in body:
                yield _line_item(_mapping(item, page_url), page_url)

    def submit_grade(self, grade: GradeSubmission) -> GradeOutcome:
        """POST one score; a refusal for an old timestamp means it is already there.

        The timestamp is never moved forward to get past the refusal: the
        platform already holds this grade or a newer one.
        """
        if grade.timestamp.utcoffset() is None:
            raise ValidationFailed("GradeSubmission.timestamp must carry a UTC offset")
        score: dict[str, Any] = {
            "userId": grade.external_user_id,
            "scoreGiven": json_number(grade.score),
            "scoreMaximum": json_number(grade.points_possible),
            "activityProgress": "Completed",
            "gradingProgress": "FullyGraded",
            # AGS 3.4.9: ISO 8601 "with a sub-second precision", even at a whole second
            "timestamp": grade.timestamp.isoformat(timespec="microseconds"),
        }
        if grade.comment:
            score["comment"] = grade.comment
        url = scores_url(grade.assignment_external_id)
        try:
            self.http.request("POST", url, json=score, headers={"Content-Type": SCORE_MEDIA_TYPE})
        except LMSRequestRejected as exc:
            if _is_stale_refusal(exc):
                return GradeOutcome(already_applied=True, detail=exc.message)
            raise
        return GradeOutcome()

    @classmethod
    def option_urls(cls, options: Mapping[str, Any]) -> Iterator[tuple[str, Any]]:
        """Each context's service URLs given (a null one counts as not given)."""
        contexts = options.get("contexts")
        for index, context in enumerate(contexts if isinstance(contexts, list) else []):
            for key in SERVICE_URLS:
                if isinstance(context, Mapping) and context.get(key) is not None:
                    yield f"options.contexts[{index}].{key}", context[key]

    def close(self) -> None:
        self.http.close()
        self.tokens.close()

    def _service_url(self, context_id: str, key: str) -> str:
        context = self.contexts.get(context_id)
        if context is None:
            raise ConfigurationError(f"options.contexts has no context {context_id!r}")
        url = context.get(key)
        if not isinstance(url, str) or not url:
            raise ConfigurationError(f"options.contexts[{context_id!r}].{key} is not configured")
        return url

    def _link_pages(self, url: str, media_type: str) -> Iterator[tuple[str, Any]]:
        """Follow ``Link: <...>; rel="next"``; the services need their own Accept."""
        seen: set[str] = set()
        next_url: str | None = url
        while next_url is not None:
            if next_url in seen:
                raise ValidationFailed(f"{next_url}: Link rel=next repeats a page")
            seen.add(next_url)
            response = self.http.request("GET", next_url, headers={"Accept": media_type})
            yield next_url, self.http.decode(response)
            following = parse_link_header(response.headers.get("Link", "")).get("next")
            next_url = (
                str(next_page_url(response.request.url, following, 'Link rel="next"'))
                if following
                else None
            )


def scores_url(lineitem_url: str) -> str:
    """``{lineitem}/scores``, keeping any query string of the line item URL (AGS 3.4)."""
    parts = urlsplit(lineitem_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def map_roles(roles: list[Any]) -> RosterRole | None:
    """The course role from IMS role URIs (or short names), most specific first.

    A TA carries both ``membership#Instructor`` and the sub-role
    ``membership/Instructor#TeachingAssistant``, so the sub-role wins.  An
    institution or system role (``institution/person#Instructor``, LTI 1.1's
    ``urn:lti:instrole:ims/lis/Instructor``) is no course role: a teacher of the
    school who is a learner in this course is a student here.  Only an
    administrator of the institution or platform counts, as ``admin``.
    """
    found: set[RosterRole] = set()
    for role in roles:
        if not isinstance(role, str):
            continue
        if role.startswith(_NOT_CONTEXT_ROLES):
            if role.endswith(("#Administrator", "/Administrator")):
                found.add("admin")
            continue  # other institution and system roles say nothing about this course
        name = role.rsplit("#", 1)[-1] if "#" in role else role.rsplit("/", 1)[-1]
        mapped = _CONTEXT_ROLES.get(name)
        if mapped is not None:
            found.add(mapped)
    return next((role for role in _ROLE_PRIORITY if role in found), None)


def _is_stale_refusal(exc: LMSRequestRejected) -> bool:
    """409, or a 400/422 that says the timestamp comes before the stored one.

    Not every refusal naming the timestamp: Canvas also refuses one "not a
    valid timestamp" or "in the future", and counting those as already
    applied would drop the grade while reporting it sent.
    """
    if exc.status_code == _STALE_STATUS:
        return True
    said = exc.message.lower()
    return (
        exc.status_code in _STALE_MESSAGE_STATUSES
        and "timestamp" in said
        and _STALE_WORDS.search(said) is not None
        and "future" not in said
    )


def _member(member: Mapping[str, Any], url: str) -> RosterEntry | None:
    user_id = member.get("user_id")
    if not isinstance(user_id, str) or not user_id:
        raise ValidationFailed(f"{url}: a member has no 'user_id'")
    roles = member.get("roles")
    if not isinstance(roles, list):
        raise ValidationFailed(f"{url}: member {user_id!r} has no 'roles' list")
    role = map_roles(roles)
    if role is None:
        return None  # only roles that mean nothing for a course
    status = str(member.get("status") or "Active")
    return RosterEntry(
        external_user_id=user_id,
        role=role,
        state=_STATUS_MAP.get(status, "inactive"),
        given_name=member.get("given_name"),
        family_name=member.get("family_name"),
        email=member.get("email"),
        username=member.get("lis_person_sourcedid") or None,
        raw=member,
    )


def _line_item(item: Mapping[str, Any], url: str) -> Assignment:
    item_id = item.get("id")
    if not isinstance(item_id, str) or not item_id:
        raise ValidationFailed(f"{url}: a line item has no 'id'")
    label = item.get("label")
    if not isinstance(label, str):
        raise ValidationFailed(f"{url}: line item {item_id!r} has no 'label'")
    # strict: NaN or Infinity (which JSON parsing lets through) is refused, not stored
    points = strict_decimal(item.get("scoreMaximum"), f"{url}: line item {item_id!r} scoreMaximum")
    if _origin(item_id) != _origin(url):
        raise ValidationFailed(
            f"{url}: line item {item_id!r} is on another host than its container; not"
            " taken, so no score sends the access token there"
        )
    return Assignment(
        external_id=item_id,
        title=label,
        assignment_type=item.get("tag") or None,
        points_possible=points,
        unlock_at=iso_datetime(item.get("startDateTime")),
        due_at=iso_datetime(item.get("endDateTime")),
        raw=item,
    )


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url`` (the default port spelt out); a line item id that
    is no absolute URL has none, and is refused as on another host."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return "", "", None
    return origin(parsed)


def _contexts(options: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    raw = options.get("contexts")
    if not isinstance(raw, list) or not raw:
        raise ConfigurationError("options.contexts must list the launched LTI contexts")
    contexts: dict[str, Mapping[str, Any]] = {}
    for index, context in enumerate(raw):
        if not isinstance(context, Mapping) or not isinstance(context.get("id"), str):
            raise ConfigurationError(f"options.contexts[{index}].id is missing")
        if context["id"] in contexts:  # the later one would replace the first, unsaid
            raise ConfigurationError(
                f"options.contexts[{index}].id {context['id']!r} is given twice; give each"
                " context once"
            )
        if all(context.get(key) is None for key in SERVICE_URLS):
            raise ConfigurationError(
                f"options.contexts[{index}] names neither memberships_url nor lineitems_url:"
                " a context without either service has nothing to sync"
            )
        contexts[context["id"]] = context
    return contexts


def _mapping(value: Any, url: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValidationFailed(f"{url}: expected a JSON object")
    return value
