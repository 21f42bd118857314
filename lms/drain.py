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
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lms.base import GradeOutcome, LMSClient
from lms.passback import (
    ClaimedGrade,
    PassbackPolicy,
    claim,
    record_outcome,
    recover_expired,
    supersede_older,
)
from lms.registry import make_client
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
) -> DrainReport:
    """Send due grades until none is due or ``time_budget`` seconds have passed."""
    policy = policy or PassbackPolicy()
    report = DrainReport()
    deadline = clock() + time_budget
    clients = _Clients(engine, secrets, client_factory, policy)
    try:
        while clock() < deadline:
            with engine.begin() as connection:
                report.recovered += recover_expired(connection)
                report.superseded += supersede_older(connection)
                batch = claim(connection, policy)
            if not batch:
                break
            stop_at = clock() + policy.lease.total_seconds() * (1 - LEASE_MARGIN)
            _send_batch(engine, clients, batch, policy, report, lambda: clock() >= stop_at)  # noqa: B023
    finally:
        clients.close()
    if report.recovered:
        log.warning("%d grade passback(s) were left sending by a dead worker", report.recovered)
    return report


def _send_batch(
    engine: Engine,
    clients: _Clients,
    batch: list[ClaimedGrade],
    policy: PassbackPolicy,
    report: DrainReport,
    lease_ending: Callable[[], bool],
) -> None:
    for position, grade in enumerate(batch):
        if lease_ending():
            with engine.begin() as connection:
                for unsent in batch[position:]:
                    record_outcome(connection, unsent, "pending", unspent=True)
            report.released += len(batch) - position
            return
        try:
            outcome = clients.get(grade.integration_id).submit_grade(grade.submission)
        except Exception as exc:  # one grade's failure must not hold back the others
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
                    grade.id, grade.integration_id, verdict.status, type(exc).__name__,
                    verdict.error,
                ))  # fmt: skip
            log.info("grade passback %s: %s (%s)", grade.id, verdict.status, verdict.error)
            continue
        with engine.begin() as connection:
            kept = record_outcome(connection, grade, "success", data=_outcome_data(outcome))
        _count(report, "success", kept)
        report.already_applied += int(kept and outcome.already_applied)


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
    """One client per integration for the whole drain; a broken config is remembered."""

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
        self._box: SecretBox | None = None
        self._made: dict[uuid.UUID, LMSClient | ConfigurationError] = {}

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
        return self._factory(with_retries(config, self._retries))

    def close(self) -> None:
        for made in self._made.values():
            if isinstance(made, LMSClient):
                made.close()
