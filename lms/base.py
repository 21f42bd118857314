"""The one interface every LMS client implements, and the records it speaks.

Clients normalise each platform's JSON into these records; sync and passback
(``lms.sync``, ``lms.passback``) only ever see records, never raw platform
shapes.  Nothing here knows about Celery or the database.
"""

from __future__ import annotations

import abc
import datetime as dt
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal
from typing import Any, ClassVar, Literal

from models.redaction import redact, remember

RosterRole = Literal["student", "teacher", "ta", "admin", "observer"]
EnrollmentState = Literal["active", "inactive", "invited", "completed", "dropped"]


@dataclass(frozen=True)
class Credentials:
    """Decrypted secrets; ``repr`` never shows them."""

    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    api_key: str | None = field(default=None, repr=False)
    refresh_token: str | None = field(default=None, repr=False)
    private_key_pem: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class ConnectionConfig:
    """How to reach one LMS integration (one row of ``lms_integrations``)."""

    platform: str
    base_url: str
    credentials: Credentials
    api_version: str | None = None
    auth_endpoint: str | None = None
    token_endpoint: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    timeout_seconds: float = 30.0
    max_retries: int = 5

    def __repr__(self) -> str:
        """The dataclass's, but a password in any URL (stored by an older version) masked."""
        shown = ", ".join(f"{item.name}={getattr(self, item.name)!r}" for item in fields(self))
        return f"{type(self).__name__}({redact(shown)})"


@dataclass(frozen=True)
class Course:
    external_id: str
    title: str
    description: str | None = None
    subject: str | None = None
    grade_level: int | None = None
    instructor_name: str | None = None
    instructor_email: str | None = None
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)
    restricted: bool = False
    """Listed, but its details, roster and assignments are closed to this token for now
    (Canvas's ``access_restricted_by_date``): only ``external_id`` and ``title`` are read,
    the title being the id when the LMS names no title."""
    has_roster: bool = True
    """False when the LMS offers no roster for this course (an LTI context launched
    without the NRPS claim): none is read, and the roster a sync wrote stays as it is."""
    has_assignments: bool = True
    """False when the LMS offers no assignment list for this course (an LTI context
    without a line item container): none is read, and those a sync wrote stay."""


@dataclass(frozen=True)
class RosterEntry:
    external_user_id: str
    role: RosterRole
    state: EnrollmentState
    given_name: str | None = None
    family_name: str | None = None
    email: str | None = None
    username: str | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Assignment:
    external_id: str
    title: str
    description: str | None = None
    assignment_type: str | None = None
    points_possible: Decimal | None = None
    due_at: dt.datetime | None = None
    unlock_at: dt.datetime | None = None
    lock_at: dt.datetime | None = None
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class GradeSubmission:
    """One grade to send; built once from the passback row and never changed.

    ``timestamp`` is fixed when the attempt completed, and ``sourced_id`` is
    derived from the passback row id, so every retry sends the same payload.
    """

    course_external_id: str
    assignment_external_id: str
    external_user_id: str
    score: Decimal
    points_possible: Decimal
    timestamp: dt.datetime
    sourced_id: str
    comment: str | None = None


@dataclass(frozen=True)
class GradeOutcome:
    """``already_applied`` is true when the LMS already held this (or a newer) grade."""

    already_applied: bool = False
    detail: str | None = None


class LMSClient(abc.ABC):
    """A client of one LMS platform; one instance per integration and run."""

    platform: ClassVar[str]
    option_keys: ClassVar[frozenset[str]] = frozenset()
    """The keys of ``ConnectionConfig.options`` the client reads, and the only ones ``add``
    and ``update`` store: another is a typo the client would ignore (``lms.registry``)."""
    secret_keys: ClassVar[frozenset[str]] = frozenset()
    """The ``Credentials`` secrets the client reads (``api_key``, ``client_secret``,
    ``private_key_pem``): ``add`` and ``update`` refuse another, which would be stored
    encrypted and never used (an API key given to a platform that wants a client secret)."""

    def __init__(self, config: ConnectionConfig) -> None:
        self.config = config
        # Whatever quotes them in this process (httpcore's DEBUG line refusing a token with a
        # line break in it, a library's message) shows them masked, in every log line.
        creds = config.credentials
        secrets = (creds.client_secret, creds.api_key, creds.refresh_token, creds.private_key_pem)
        remember(*(secret for secret in secrets if secret))

    @abc.abstractmethod
    def list_courses(self) -> Iterator[Course]: ...

    @abc.abstractmethod
    def list_roster(self, course_external_id: str) -> Iterator[RosterEntry]: ...

    @abc.abstractmethod
    def list_assignments(self, course_external_id: str) -> Iterator[Assignment]: ...

    @abc.abstractmethod
    def submit_grade(self, grade: GradeSubmission) -> GradeOutcome: ...

    @classmethod
    def option_urls(
        cls,
        options: Mapping[str, Any],  # noqa: ARG003 - the clients with URL options read it
    ) -> Iterator[tuple[str, Any]]:
        """(name, value) of each URL in ``options`` the client calls, however malformed.

        ``add`` and ``update`` check them as they check the endpoints
        (``lms.store.check_url``); the default client has none.
        """
        return iter(())

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default has nothing to release."""

    def __enter__(self) -> LMSClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
