"""Send due grade passbacks: claim a batch, send each grade once, write each outcome.

Any number of drains may run at once (two beats, a worker per host): claims
skip rows another drain holds, and an outcome is written only under the
lease it was sent with.  What an error means for a grade:

- the LMS took it, or already had it or a newer grade (``already_applied``): success;
- refused for good (a 4xx other than 401 or a refused token): failed, with the LMS's message;
- outage, throttling, 401 (credentials being fixed), a missing key or a
  client that cannot be built: pending again after a capped exponential
  backoff (``Retry-After`` honoured), until ``give_up_after`` has passed;
- answers that make no sense: retried ``malformed_attempts`` times, then failed.

A grade whose course a sync found closed in the LMS (``access_restricted_since``:
Canvas's restricted by date, which answers 401) is held: never claimed, so the
LMS is not called and no attempt is spent, until a sync finds the course open;
still closed past ``give_up_after``, it fails naming the course.  A 401 for a
course not known as closed is judged as above.

A drain stays inside its time: the budget is checked before every grade, and
an integration that times out, cannot be reached or answers 5xx through every
retry is skipped for the rest of the drain (its grades go back to pending
untouched), so a dead LMS costs one grade's worst case per drain, not one per
grade.  So is one whose LMS asked to wait (a ``Retry-After`` the HTTP client did
not wait out): its pace holds for every grade, not only the one it refused, so
the wait is written to the integration (``not_before``, as a sync writes it)
and later drains leave its grades alone until then, however long the wait
(up to a day), not only the 15 minutes a grade's own backoff honours.  A time
limit that arrives anyway (``interrupts``, or any ``BaseException`` that is not
an ``Exception``) releases the unsent grades and is re-raised, never recorded
as a grade's error.  So is a database error, wherever it comes (claiming,
reading an integration to build its client, writing an outcome): the drain
stops and the task fails with it, one line in the worker's log
(``workers.outages``); grades it could not release stay ``sending`` until
their lease ends, and the next drain sends them again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from lms.base import GradeOutcome, LMSClient
from lms.http import server_wait, unreachable
from lms.passback import (
    ClaimedGrade,
    PassbackPolicy,
    claim,
    fail_held_too_long,
    record_outcome,
    recover_expired,
    supersede_older,
)
from lms.registry import make_client
from lms.schedule import set_not_before
from lms.secrets import SecretBox
from lms.store import load_config, with_retries
from models.errors import (
    ConfigurationError,
    LMSAuthRejected,
    LMSRequestRejected,
    PermanentError,
    RetryableError,
    ToolboxError,
    ValidationFailed,
)

log = logging.getLogger(__name__)

ClientFactory = Callable[..., LMSClient]
#: Stop sending from a batch this long before its lease ends, and release the rest.
LEASE_MARGIN = 0.25
#: The longest single wait ``LMSHttp`` makes between two sends (its ``backoff_cap``).
HTTP_WAIT_CAP_SECONDS = 30.0


def send_worst_case_seconds(policy: PassbackPolicy) -> float:
    """The longest one grade's send can take with the drain's HTTP settings.

    ``checked_write`` makes up to ``r + 1`` writes, each after a check that is a
    request of up to ``r + 1`` sends (``r = http_retries``); every send may
    take the read timeout and be preceded by one wait of at most
    ``HTTP_WAIT_CAP_SECONDS``.  (A credential renewal on 401 adds one send per
    request; it is not counted.)
    """
    tries = policy.http_retries + 1
    sends = tries * (tries + 1)
    return sends * (policy.http_timeout_seconds + HTTP_WAIT_CAP_SECONDS)


@dataclass(frozen=True)
class PassbackProblem:
    """One grade that was not sent: ``failed`` for good, or ``pending`` again (a retry)."""

    passback_id: uuid.UUID
    integration_id: uuid.UUID
    status: str
    error_type: str
    error: str


@dataclass
class DrainReport:
    sent: int = 0
    already_applied: int = 0
    retrying: int = 0
    failed: int = 0
    superseded: int = 0
    recovered: int = 0
    released: int = 0
    lost_leases: int = 0
    problems: list[PassbackProblem] = field(default_factory=list)
    """Each grade not sent this time, for the error log (ids and the LMS's message only)."""

    def counts(self) -> dict[str, int]:
        return {name: value for name, value in vars(self).items() if isinstance(value, int)}


@dataclass(frozen=True)
class Verdict:
    status: str
    error: str
    delay: dt.timedelta = dt.timedelta(0)


def drain(
    engine: Engine,
    *,
    secrets: Callable[[], SecretBox],
    client_factory: ClientFactory = make_client,
    policy: PassbackPolicy | None = None,
    time_budget: float = 240.0,
    clock: Callable[[], float] = time.monotonic,
    interrupts: tuple[type[BaseException], ...] = (),
) -> DrainReport:
    """Send due grades until none is due or ``time_budget`` seconds have passed.

    No grade starts after the budget, so a drain ends within ``time_budget``
    plus ``send_worst_case_seconds(policy)``.  ``interrupts`` are exceptions
    that stop the drain (Celery's soft time limit is an ``Exception``): the
    grades not sent go back to pending and the exception is re-raised.
    """
    policy = policy or PassbackPolicy()
    report = DrainReport()
    deadline = clock() + time_budget
    clients = _Clients(engine, secrets, client_factory, policy)
    try:
        with engine.begin() as connection:  # once: a grade is held only by a sync's mark
            _give_up_held(connection, policy, report)
        while clock() < deadline:
            with engine.begin() as connection:
                report.recovered += recover_expired(connection)
                report.superseded += supersede_older(connection)
                batch = claim(connection, policy, skip=clients.down)
            if not batch:
                break
            stop_at = min(deadline, clock() + policy.lease.total_seconds() * (1 - LEASE_MARGIN))
            out_of_time = lambda: clock() >= stop_at  # noqa: B023, E731
            _send_batch(engine, clients, batch, policy, report, out_of_time, interrupts)
    finally:
        clients.close()
    if report.recovered:
        log.warning("%d grade passback(s) were left sending by a dead worker", report.recovered)
    return report


def _give_up_held(connection: Connection, policy: PassbackPolicy, report: DrainReport) -> None:
    for grade in fail_held_too_long(connection, policy):
        report.failed += 1
        report.problems.append(PassbackProblem(
            grade.id, grade.integration_id, "failed", "CourseRestricted", grade.error
        ))  # fmt: skip
        log.warning("grade passback %s: failed (%s)", grade.id, grade.error)


def _send_batch(
    engine: Engine,
    clients: _Clients,
    batch: list[ClaimedGrade],
    policy: PassbackPolicy,
    report: DrainReport,
    out_of_time: Callable[[], bool],
    interrupts: tuple[type[BaseException], ...],
) -> None:
    """Send the batch in order; whatever is not written when it stops goes back to pending.

    An interrupt may land anywhere, even while an outcome is being written: that
    transaction rolls back and the grade is released with the rest (a resend of a
    grade the LMS took is recognised as already applied).
    """
    done = 0
    try:
        for grade in batch:
            if out_of_time():
                break
            if clients.is_down(grade.integration_id):
                _release(engine, [grade], report)
            else:
                _send_one(engine, clients, grade, policy, report, interrupts)
            done += 1
    except BaseException:
        _release(engine, batch[done:], report)
        raise
    _release(engine, batch[done:], report)


def _send_one(
    engine: Engine,
    clients: _Clients,
    grade: ClaimedGrade,
    policy: PassbackPolicy,
    report: DrainReport,
    interrupts: tuple[type[BaseException], ...],
) -> None:
    try:
        outcome = clients.get(grade.integration_id).submit_grade(grade.submission)
    except Exception as exc:
        if isinstance(exc, (*interrupts, SQLAlchemyError)):
            raise  # the database (reading the integration), not the LMS: not the grade's error
        if unreachable(exc):
            clients.mark_down(grade.integration_id)
        _record_failure(engine, grade, exc, policy, report)
        asked = server_wait(exc)
        if asked:
            clients.mark_down(grade.integration_id)
            with engine.begin() as connection:
                set_not_before(connection, grade.integration_id, asked)
        return
    with engine.begin() as connection:
        kept = record_outcome(connection, grade, "success", data=_outcome_data(outcome))
    _count(report, "success", kept)
    report.already_applied += int(kept and outcome.already_applied)


def _record_failure(
    engine: Engine,
    grade: ClaimedGrade,
    exc: Exception,
    policy: PassbackPolicy,
    report: DrainReport,
) -> None:
    """One grade's failure is written and reported; it never holds back the others."""
    verdict = judge(exc, grade, policy, dt.datetime.now(dt.UTC))
    if not isinstance(exc, ToolboxError):
        log.exception("grade passback %s: unexpected error", grade.id)
    with engine.begin() as connection:
        kept = record_outcome(
            connection, grade, verdict.status, error=verdict.error, delay=verdict.delay
        )
    _count(report, verdict.status, kept)
    if kept:
        report.problems.append(PassbackProblem(
            grade.id, grade.integration_id, verdict.status, type(exc).__name__, verdict.error,
        ))  # fmt: skip
    # a grade refused for good is the operator's to see; one that waits for a retry is not yet
    log_at = logging.WARNING if verdict.status == "failed" else logging.INFO
    log.log(log_at, "grade passback %s: %s (%s)", grade.id, verdict.status, verdict.error)


def _release(engine: Engine, grades: list[ClaimedGrade], report: DrainReport) -> None:
    """Unsent grades go back to pending at once, their attempt not counted."""
    if not grades:
        return
    with engine.begin() as connection:
        for unsent in grades:
            record_outcome(connection, unsent, "pending", unspent=True)
    report.released += len(grades)


def judge(
    exc: BaseException, grade: ClaimedGrade, policy: PassbackPolicy, now: dt.datetime
) -> Verdict:
    """What a failed attempt means for the grade (by error class, never by message text)."""
    message = exc.message if isinstance(exc, ToolboxError) else f"{type(exc).__name__}: {exc}"
    if isinstance(exc, LMSRequestRejected):
        # Refused credentials are an operator's to fix; the grade waits for them.
        if not isinstance(exc, LMSAuthRejected) and exc.status_code != 401:
            return Verdict("failed", message)
    elif isinstance(exc, ValidationFailed):
        if grade.attempt_count >= policy.malformed_attempts:
            return Verdict("failed", f"gave up after {grade.attempt_count} attempts: {message}")
    elif isinstance(exc, PermanentError):
        return Verdict("failed", message)
    if now - grade.created_at > policy.give_up_after:
        days = policy.give_up_after.days
        return Verdict("failed", f"gave up after {grade.attempt_count} attempts over "
                                 f"{days} day(s): {message}")  # fmt: skip
    retry_after = exc.retry_after if isinstance(exc, RetryableError) else None
    delay = backoff(grade.attempt_count, policy, retry_after)
    return Verdict("pending", message, dt.timedelta(seconds=delay))


def backoff(attempt: int, policy: PassbackPolicy, retry_after: float | None = None) -> float:
    """Capped exponential backoff, jittered over half to all of the step; >= ``retry_after``."""
    step = min(policy.backoff_cap_seconds, policy.backoff_base_seconds * 2 ** min(attempt - 1, 20))
    delay = random.uniform(step / 2, step)
    if retry_after is not None:
        delay = max(delay, min(retry_after, policy.backoff_cap_seconds))
    return delay


def _count(report: DrainReport, status: str, kept: bool) -> None:
    if not kept:
        report.lost_leases += 1
    elif status == "success":
        report.sent += 1
    elif status == "failed":
        report.failed += 1
    else:
        report.retrying += 1


def _outcome_data(outcome: GradeOutcome) -> dict[str, object]:
    return {
        "outcome": "already_applied" if outcome.already_applied else "applied",
        "detail": outcome.detail,
    }


class _Clients:
    """One client per integration for the whole drain; a broken config or a down LMS is remembered.

    The clients wait at most ``policy.http_timeout_seconds`` for an answer.
    """

    def __init__(
        self,
        engine: Engine,
        secrets: Callable[[], SecretBox],
        factory: ClientFactory,
        policy: PassbackPolicy,
    ) -> None:
        self._engine = engine
        self._secrets = secrets
        self._factory = factory
        self._retries = policy.http_retries
        self._timeout = policy.http_timeout_seconds
        self._box: SecretBox | None = None
        self._made: dict[uuid.UUID, LMSClient | ConfigurationError] = {}
        self.down: set[uuid.UUID] = set()
        """Integrations that failed for want of an answer, or whose LMS asked to wait: skipped
        for the rest of the drain."""

    def is_down(self, integration_id: uuid.UUID) -> bool:
        return integration_id in self.down

    def mark_down(self, integration_id: uuid.UUID) -> None:
        self.down.add(integration_id)

    def get(self, integration_id: uuid.UUID) -> LMSClient:
        made = self._made.get(integration_id)
        if made is None:
            try:
                made = self._make(integration_id)
            except ConfigurationError as exc:
                made = exc
            self._made[integration_id] = made
        if isinstance(made, ConfigurationError):
            raise ConfigurationError(made.message)
        return made

    def _make(self, integration_id: uuid.UUID) -> LMSClient:
        if self._box is None:
            self._box = self._secrets()
        with Session(self._engine) as session:
            config = load_config(session, integration_id, self._box)
        config = with_retries(config, self._retries)
        timeout = min(config.timeout_seconds, self._timeout)
        return self._factory(dataclasses.replace(config, timeout_seconds=timeout))

    def close(self) -> None:
        for made in self._made.values():
            if isinstance(made, LMSClient):
                made.close()
