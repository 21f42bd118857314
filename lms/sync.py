"""One sync of one integration: courses, then per course its assignments and roster.

The run needs a claim (``lms.schedule``: the row says ``running``) and holds
the integration's lock, so a duplicate message steps aside.  It runs only for
the newest claim: its ``run_id`` must be the row's ``sync_run_id``.  A chain
of retries whose claim was taken over while it waited (an operator's ``lms
sync``) is skipped as superseded and ends; a message without a run id (queued
by a version before run ids) runs only while the row has none.  Each course is
read completely from the LMS first and then written in its own transaction:
a malformed page or an outage in one course writes nothing for that course,
and the other courses still land (the run ends ``partial``).  Courses the LMS
stopped listing are marked deleted only after a complete course list.  A
course the LMS lists as ``restricted`` is neither read further nor blanked: its
stored row, assignments and roster stay as the last full read left them, and
the report counts it (``courses_restricted``).

The end is written to the integration row: ``last_sync_status`` (``success``,
``partial``, ``failed``), ``last_sync_at`` and ``sync_error_message``.  A
retryable failure of the whole run before the last attempt leaves the claim in
place (the caller retries) with the reason in ``sync_error_message``.

A run whose credentials the LMS refuses (``LMSAuthRejected``: a 401 that no token
renewal cured, a revoked Canvas token, Moodle's ``invalidtoken``) stops at once, at
the course list or at any course: every further course would fail the same way.  It
ends ``failed`` with that one reason, ``credentials refused: ...``.  A run stopped by
Ctrl-C, SIGTERM or a time limit is recorded ``failed (interrupted ...)`` within
``STOP_WRITE_SECONDS``; a write that fails is logged, never raised over the stop.

A run that stops on the LMS's ``Retry-After`` (the course list's, or a
course's: no further course is asked for then) writes when the LMS may be
called again, ``not_before`` (``lms.schedule``); a run the LMS answered
(``success``, ``partial`` for other reasons) clears it.  A run claimed
before the LMS asked (a queued message, a scheduled retry; the grade drain
writes ``not_before`` too) does not call it: it ends ``failed`` as a run
stopped by a ``Retry-After`` does, so beat syncs it then, and reports
``skipped``; unless an operator said ``--ignore-retry-after``.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import partial
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from lms.base import Course, LMSClient
from lms.http import server_wait, unreachable
from lms.registry import make_client
from lms.schedule import (
    RETRYING,
    SyncLock,
    limit_statements,
    set_not_before,
    sync_lock,
    waiting_reason,
)
from lms.secrets import SecretBox
from lms.store import connection_config
from lms.upsert import Counts, CourseSnapshot, CourseWrite, mark_missing_courses, write_course
from models.errors import LMSAuthRejected, RetryableError, ToolboxError
from models.lms import LMSIntegration
from models.redaction import redact

log = logging.getLogger(__name__)
summary_log = logging.getLogger(f"{__name__}.summary")
"""The line that ends each run: its counts, and why a run that failed as a whole failed.
A service's record: ``toolbox lms sync --now`` prints the report instead (not twice)."""
_STOPS = {
    "KeyboardInterrupt": "Ctrl-C",
    "SystemExit": "the process was told to stop",
    "SoftTimeLimitExceeded": "its time limit ran out",
}
"""What stopped a run, for its record (``SystemExit``: SIGTERM in a ``toolbox`` command)."""

MESSAGE_LIMIT = 2000
REFUSED = "credentials refused: "
"""How the message of a run the LMS refused the credentials of starts."""
STOP_WRITE_SECONDS = 5.0
"""How long recording a stopped run may take (PostgreSQL's ``statement_timeout``): a
process told to stop does not hang on a row lock or a slow database for it."""
DOWN_AFTER_COURSES = 3
"""Courses in a row whose reads the LMS did not answer through every retry (a timeout, a
refused connection, a 5xx) before a run asks it for no further course: an LMS that died
mid-sync cost each remaining course its retries (about 7 s of backoff, or six 30 s
timeouts), and a district's hundreds of courses ran into the sync's time limit."""
TAKEN_OVER = (
    "stopped: its lock went with its PostgreSQL session (a restart, pg_terminate_backend)"
    " and another run took the sync over"
)
SUPERSEDED = "superseded by a newer claim (an operator's `lms sync`, or a stale claim taken over)"
DISABLED = "the integration is disabled"
#: The run's claim is still the row's: no newer claim took it over.
_OWNED = (
    "id = :id AND last_sync_status = 'running'"
    " AND sync_run_id IS NOT DISTINCT FROM CAST(:run_id AS uuid)"
)
ClientFactory = Callable[..., LMSClient]


@dataclass(frozen=True)
class SyncProgress:
    done: int
    total: int


@dataclass
class SyncReport:
    """What one run did; ``status`` is ``skipped`` when it did not run at all."""

    integration_id: uuid.UUID
    status: str = "success"
    message: str | None = None
    courses_listed: int = 0
    courses_failed: int = 0
    courses_removed: int = 0
    courses_restricted: int = 0
    """Listed with their details withheld from the token for now: kept as stored."""
    courses: Counts = field(default_factory=Counts)
    assignments: Counts = field(default_factory=Counts)
    enrollments: Counts = field(default_factory=Counts)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    not_before: dt.datetime | None = None
    """When the LMS may be called again, if the run stopped on its ``Retry-After``."""

    @property
    def reason(self) -> str | None:
        """Why a run that failed as a whole failed (the LMS unreachable, credentials
        refused), secrets masked; None otherwise: a failed course's line names its own."""
        if self.status == "failed" and not self.errors and self.message:
            return redact(self.message)
        return None

    def as_dict(self) -> dict[str, Any]:
        shown = asdict(self)
        shown["integration_id"] = str(self.integration_id)
        shown["not_before"] = self.not_before.isoformat() if self.not_before else None
        return shown


def run_sync(
    engine: Engine,
    integration_id: uuid.UUID,
    *,
    secrets: Callable[[], SecretBox],
    client_factory: ClientFactory = make_client,
    progress: Callable[[SyncProgress], None] | None = None,
    final_attempt: bool = True,
    longest_wait: float | None = None,
    ignore_not_before: bool = False,
    run_id: uuid.UUID | None = None,
) -> SyncReport:
    """Run the claimed sync of ``integration_id``; commits per course, never raises half-way.

    Only for the claim ``run_id`` (``Claim.run_id``, ``ClaimedRun.run_id``):
    a newer claim supersedes it (``skipped``, nothing written).  Not before
    the integration's ``not_before`` (``skipped``, the claim released),
    unless ``ignore_not_before``: an operator's override.

    Raises only a ``RetryableError`` of the whole run when ``final_attempt``
    is false (the claim stays), or what interrupted it (after writing
    ``failed``).  A ``RetryableError`` asking to wait (``retry_after``) longer
    than ``longest_wait`` seconds ends the run ``failed`` instead: the
    schedule's retry of failed syncs takes over, not before the time the LMS
    named (``SyncReport.not_before``).
    """
    started = time.monotonic()
    report = SyncReport(integration_id)
    with sync_lock(engine, integration_id) as locked:
        if not locked:
            return _skipped(report, "another process is running this sync")
        with Session(engine) as session:
            row = session.get(LMSIntegration, integration_id)
            unclaimed = _not_this_runs(row, run_id)
            if unclaimed == DISABLED:  # the claim is this run's: end it, or it stays `running`
                return _ended_unrun(engine, report, run_id, DISABLED)
            if unclaimed is not None or row is None:
                return _skipped(report, unclaimed or "")
            waiting = None if ignore_not_before else _waiting_until(session, integration_id)
            if waiting is not None:  # the LMS asked to wait after this run was claimed
                return _held_back(engine, report, run_id, waiting)
            flags = (row.roster_sync_enabled, row.content_sync_enabled)
            try:
                config = connection_config(row, secrets())
            except ToolboxError as exc:
                return _finish(engine, report, run_id, "failed", exc.message, started)
        log.info("LMS sync of %s (%s) started", integration_id, config.platform)
        try:
            with client_factory(config) as client:
                owned = partial(_still_owned, engine, locked, integration_id, run_id)
                asked = _sync_courses(engine, client, report, flags, progress, owned)
        except _TakenOver:
            return _skipped(report, TAKEN_OVER)
        except RetryableError as exc:
            wait = exc.retry_after or 0.0
            if not final_attempt and (longest_wait is None or wait <= longest_wait):
                _note_retry(engine, integration_id, run_id, exc)
                raise
            message, asked = exc.message, server_wait(exc)
            if asked:
                beyond = "" if final_attempt else ", longer than a retry waits"
                message += f" (the LMS asked to wait {asked:.0f}s{beyond})"
            return _finish(engine, report, run_id, "failed", message, started, asked)
        except ToolboxError as exc:
            return _finish(engine, report, run_id, "failed", _failed_whole(report, exc), started)
        except BaseException as exc:  # a time limit or Ctrl-C: say so, then let it propagate
            _record_stop(engine, report, run_id, exc, started)
            raise
        if report.courses_failed == 0:  # still under the lock: nobody can re-claim before this
            return _finish(engine, report, run_id, "success", None, started)
        status = "failed" if report.courses_failed == report.courses_listed else "partial"
        summary = f"{report.courses_failed} of {report.courses_listed} course(s) failed: "
        return _finish(
            engine, report, run_id, status, summary + "; ".join(report.errors), started, asked
        )


def _failed_whole(report: SyncReport, exc: ToolboxError) -> str:
    """Why the run failed as a whole.  Refused credentials are its one reason: the
    errors of courses that failed before them are dropped from ``report`` (their
    warnings said them), so ``SyncReport.reason`` gives it."""
    if not isinstance(exc, LMSAuthRejected):
        return exc.message
    report.errors.clear()
    return REFUSED + exc.message


def _not_this_runs(row: LMSIntegration | None, run_id: uuid.UUID | None) -> str | None:
    """Why the run must not go on with the row (the claim is not its), or None."""
    if row is None or row.last_sync_status != "running":
        return "not claimed (no sync is due or it already finished)"
    if row.sync_run_id != run_id:  # a newer claim took the row over while this waited
        return SUPERSEDED
    if not row.is_active:  # disabled after its message was queued
        return DISABLED
    return None


def _sync_courses(
    engine: Engine,
    client: LMSClient,
    report: SyncReport,
    flags: tuple[bool, bool],
    progress: Callable[[SyncProgress], None] | None,
    owned: Callable[[], None],
) -> float | None:
    """Read and write each course; the LMS's ``Retry-After`` that stopped the loop, if one did.

    ``owned`` raises ``_TakenOver`` before a course once the run lost its lock."""
    asked: float | None = None
    silent = 0  # courses in a row the LMS did not answer for
    courses = _distinct(client.list_courses())
    report.courses_listed = len(courses)
    if progress:
        progress(SyncProgress(0, len(courses)))
    for done, course in enumerate(courses, start=1):
        owned()
        try:
            snapshot = _read_course(client, course, *flags)
            written = _write_course(engine, report.integration_id, snapshot)
        except LMSAuthRejected:
            raise  # the credentials, not this course: the run stops (``run_sync``)
        except (ToolboxError, DBAPIError) as exc:  # a deadlock or bad value: this course only
            # The class only: a database message can quote the row's (personal) values.
            reason = exc.message if isinstance(exc, ToolboxError) else type(exc.orig).__name__
            report.courses_failed += 1
            report.errors.append(f"course {course.external_id}: {reason}")
            log.warning("LMS sync of %s: course %s failed: %s",
                        report.integration_id, course.external_id, reason)  # fmt: skip
            asked = server_wait(exc)
            silent = silent + 1 if unreachable(exc) and not asked else 0
            if asked:  # the LMS throttles the client, not this course: ask it nothing more
                _not_read(report, len(courses) - done, f"the LMS asked to wait {asked:.0f}s")
                break
            if silent >= DOWN_AFTER_COURSES and done < len(courses):  # down, not one course
                _not_read(report, len(courses) - done,
                          f"the LMS did not answer for {silent} courses in a row")  # fmt: skip
                break
        else:
            silent = 0
            report.courses_restricted += int(course.restricted)
            report.courses.add(written.course)
            report.assignments.add(written.assignments)
            report.enrollments.add(written.enrollments)
        if progress:
            progress(SyncProgress(done, len(courses)))
    owned()
    with engine.begin() as connection:
        report.courses_removed = mark_missing_courses(
            connection, report.integration_id, [course.external_id for course in courses]
        )
    return asked


def _not_read(report: SyncReport, left: int, why: str) -> None:
    """The courses a stopped loop leaves unread: failed, in one error, said as it happens
    (as each failed course is), so a report need not say it again."""
    report.courses_failed += left
    report.errors.append(f"{left} course(s) not read: {why}")
    log.warning("LMS sync of %s: %s", report.integration_id, report.errors[-1])


class _TakenOver(Exception):
    """The run's lock went with its session, and another run has the sync now."""


def _still_owned(
    engine: Engine, lock: SyncLock, integration_id: uuid.UUID, run_id: uuid.UUID | None
) -> None:
    """Go on only while the lock is held, or was taken again with the claim still this run's.

    Between its session's end and the next course, the lock was free: an
    operator's ``lms sync`` (or beat, once the claim is stale) may have taken
    the sync over, and that run writes the same rows and owns the row's end.
    """
    kept = lock.keep()
    if kept == "held":
        return
    if kept == "retaken":
        with engine.connect() as connection:
            ours = connection.execute(
                text(f"SELECT 1 FROM lms_integrations WHERE {_OWNED}"),
                {"id": integration_id, "run_id": run_id},
            ).first()
        if ours is not None:
            return
    raise _TakenOver


def _write_course(
    engine: Engine, integration_id: uuid.UUID, snapshot: CourseSnapshot
) -> CourseWrite:
    """Write one course in its own transaction; once more if its session ended under it.

    A session PostgreSQL ended (a restart, ``pg_terminate_backend``) rolled the
    course back whole, and the snapshot is already read: writing it again on a
    new connection costs no LMS request, where counting the course as failed
    would end the run ``partial`` and leave it for an hour.  A second loss, or
    any other database error, fails the course as before.
    """
    for attempt in range(2):
        try:
            with engine.begin() as connection:
                return write_course(connection, integration_id, snapshot)
        except DBAPIError as exc:
            if attempt or not exc.connection_invalidated:
                raise
            log.info("LMS sync of %s: course %s written again: its session ended (%s)",
                     integration_id, snapshot.course.external_id,
                     type(exc.orig).__name__)  # fmt: skip
    raise AssertionError("unreachable: the second attempt returns or raises")


def _read_course(
    client: LMSClient, course: Course, roster: bool, assignments: bool
) -> CourseSnapshot:
    """Every page of the course before anything is written (all or nothing per course);
    none of a restricted course, whose pages the LMS refuses (Canvas: 401), nor a roster
    or assignments the LMS does not offer for the course (``Course.has_roster``)."""
    if course.restricted:
        return CourseSnapshot(course=course, roster=None, assignments=None)
    roster, assignments = roster and course.has_roster, assignments and course.has_assignments
    return CourseSnapshot(
        course=course,
        roster=list(client.list_roster(course.external_id)) if roster else None,
        assignments=list(client.list_assignments(course.external_id)) if assignments else None,
    )


def _distinct(courses: Iterable[Course]) -> list[Course]:
    seen: dict[str, Course] = {}
    for course in courses:
        seen.setdefault(course.external_id, course)
    return list(seen.values())


def _waiting_until(session: Session, integration_id: uuid.UUID) -> dt.datetime | None:
    """The integration's ``not_before`` while it lies ahead (by the database's clock)."""
    query = select(LMSIntegration.not_before).where(
        LMSIntegration.id == integration_id, LMSIntegration.not_before > func.now()
    )
    until: dt.datetime | None = session.scalar(query)
    return until


def _held_back(
    engine: Engine, report: SyncReport, run_id: uuid.UUID | None, until: dt.datetime
) -> SyncReport:
    """End the claim without calling the LMS: ``failed``, as a run stopped by a Retry-After.

    Left ``running``, the row would be claimed again as stale in 15 minutes,
    ``not_before`` or not; ended so, beat claims it once ``not_before`` passed.
    """
    report.not_before = until
    return _ended_unrun(engine, report, run_id, waiting_reason(until))


def _ended_unrun(
    engine: Engine, report: SyncReport, run_id: uuid.UUID | None, reason: str
) -> SyncReport:
    """End this run's claim ``failed`` ("not run: ...") without calling the LMS, and skip.

    Left ``running``, no run is behind the claim: ``lms list`` and ``lms status``
    would say a sync runs, and the next ``lms sync`` would take over a retry
    that does not wait.
    """
    with engine.begin() as connection:
        _write_end(connection, report.integration_id, run_id, "failed", f"not run: {reason}")
    return _skipped(report, reason)


def _skipped(report: SyncReport, reason: str) -> SyncReport:
    log.info("LMS sync of %s skipped: %s", report.integration_id, reason)
    report.status, report.message = "skipped", reason
    return report


def _note_retry(
    engine: Engine, integration_id: uuid.UUID, run_id: uuid.UUID | None, exc: RetryableError
) -> None:
    """Keep the claim; restart its stale clock; tell the operator why it waits."""
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE lms_integrations SET last_sync_at = now(), sync_error_message = :message"
                f" WHERE {_OWNED}"
            ),
            {"id": integration_id, "run_id": run_id, "message": _clip(RETRYING + exc.message)},
        )
    log.warning("LMS sync of %s will be retried: %s", integration_id, exc.message)


def _record_stop(
    engine: Engine,
    report: SyncReport,
    run_id: uuid.UUID | None,
    stop: BaseException,
    started: float,
) -> None:
    """Record the run ``failed (interrupted ...)`` within ``STOP_WRITE_SECONDS``.

    A write that fails (the database away, the row locked too long) leaves the
    row ``running`` until a sync takes it over; it is logged, and what stopped
    the run goes on, never replaced by the database's error.
    """
    try:
        _finish(engine, report, run_id, "failed", f"interrupted ({_why(stop)})", started,
                within=STOP_WRITE_SECONDS)  # fmt: skip
    except Exception as exc:
        problem = type(exc.orig if isinstance(exc, DBAPIError) else exc).__name__
        log.warning("LMS sync of %s stopped (%s) and could not be recorded failed: %s",
                    report.integration_id, _why(stop), problem)  # fmt: skip


def _finish(
    engine: Engine,
    report: SyncReport,
    run_id: uuid.UUID | None,
    status: str,
    message: str | None,
    started: float,
    asked: float | None = None,
    *,
    within: float | None = None,
) -> SyncReport:
    """Write the end; ``asked``: the LMS's ``Retry-After`` the run stopped on, if any;
    ``within``: seconds the write may take."""
    report.status, report.message = status, _clip(message) if message else None
    report.seconds = round(time.monotonic() - started, 3)
    with engine.begin() as connection:
        if within is not None:
            limit_statements(connection, within)
        _write_end(connection, report.integration_id, run_id, status, report.message)
        if asked:
            report.not_before = set_not_before(connection, report.integration_id, asked)
    log_at = logging.INFO if status == "success" else logging.WARNING
    summary_log.log(
        log_at,
        "LMS sync of %s %s in %.1fs: %d course(s), assignments +%d ~%d -%d,"
        " enrollments +%d ~%d -%d, %d course(s) restricted, %d course(s) failed%s",
        report.integration_id, status, report.seconds, report.courses_listed,
        report.assignments.inserted, report.assignments.updated, report.assignments.removed,
        report.enrollments.inserted, report.enrollments.updated, report.enrollments.removed,
        report.courses_restricted, report.courses_failed,
        f"; reason: {report.reason}" if report.reason else "",
    )  # fmt: skip
    return report


def _write_end(
    connection: Connection,
    integration_id: uuid.UUID,
    run_id: uuid.UUID | None,
    status: str,
    message: str | None,
) -> None:
    """End the claim.  A run the LMS answered clears ``not_before``; a failure of another
    kind (credentials, a time limit) says nothing of the LMS's pace."""
    connection.execute(
        text(
            "UPDATE lms_integrations SET last_sync_status = :status, last_sync_at = now(),"
            " sync_error_message = :message,"
            " not_before = CASE WHEN :answered THEN NULL ELSE not_before END"
            f" WHERE {_OWNED}"
        ),
        {
            "id": integration_id,
            "run_id": run_id,
            "status": status,
            "message": message,
            "answered": status != "failed",
        },
    )


def _clip(message: str) -> str:
    return message if len(message) <= MESSAGE_LIMIT else message[: MESSAGE_LIMIT - 3] + "..."


def _why(exc: BaseException) -> str:
    name = type(exc).__name__
    return _STOPS.get(name, name)
