"""Which integrations are due for a sync, and the claim that makes one sync run at a time.

A claim is one ``UPDATE lms_integrations SET last_sync_status = 'running'
... RETURNING``: of two beats (or a beat and an operator) only one gets the
row.  Each claim also writes a fresh ``sync_run_id``, which its message
carries (and Celery's retries of it): only the chain of the newest claim runs
(``lms.sync.run_sync``), so a chain waiting for a retry whose claim was taken
over (an operator's ``claim_now``, a stale claim) ends when it wakes.

While a sync runs, its process holds a PostgreSQL advisory lock keyed
on the integration on a dedicated connection; the lock vanishes with the
process, so a row left ``running`` whose lock is free for ``stale_after``
belongs to a dead worker (or a message the broker lost) and is claimed again.

Due means: never synced, or ``sync_frequency_hours`` since the last sync;
after a failed or partial sync, sooner: after ``failed_retry_after`` or
``partial_retry_after`` (never later than the frequency), so an outage ends
with a catch-up instead of a day's wait.  Settings are read from the table
at every tick, so a changed frequency applies without restarting beat.

Never before ``not_before``, though: the time an LMS named in a
``Retry-After`` that a sync or a grade passback stopped on instead of waiting
for it (``set_not_before``, at most ``NOT_BEFORE_CAP`` ahead).  Coming back
sooner would only be throttled again, which some LMSs punish.  An operator's
claim (``claim_now``) refuses such an integration too unless told to ignore it,
and so does a run claimed before the LMS asked (``lms.sync.run_sync``).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, NamedTuple

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import DBAPIError

log = logging.getLogger(__name__)

#: First half of the two-int advisory lock key of a running sync ("LMS1").
SYNC_LOCK_NAMESPACE = 0x4C4D5331


NOT_BEFORE_CAP = dt.timedelta(hours=24)
"""The furthest ahead an LMS's ``Retry-After`` keeps an integration waiting: a longer wish
(a misconfigured server, an HTTP date years ahead) is asked again after a day rather than
stopping the integration's syncs and grades unseen."""


@dataclass(frozen=True)
class SyncPolicy:
    failed_retry_after: dt.timedelta = dt.timedelta(minutes=15)
    partial_retry_after: dt.timedelta = dt.timedelta(hours=1)
    stale_after: dt.timedelta = dt.timedelta(minutes=15)


_LOCK_HELD = """EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = CAST(:namespace AS oid) AND l.objid = CAST(hashtext(i.id::text) AS oid))"""

#: ``i``'s frequency, capped at a year as ``lms.store`` caps it: a larger one written before
#: that cap made ``now() + interval`` overflow in every query listing integrations.
_EVERY = "make_interval(hours => least(i.sync_frequency_hours, 8760))"
#: When the integration ``i`` is next due (not meaningful while it runs); ``greatest``
#: passes over a NULL ``not_before``.
NEXT_DUE = f"""greatest(coalesce(i.last_sync_at + CASE i.last_sync_status
        WHEN 'failed' THEN least({_EVERY}, :failed)
        WHEN 'partial' THEN least({_EVERY}, :partial)
        ELSE {_EVERY} END, now()), i.not_before)"""

_CLAIM_DUE = text(f"""
WITH due AS (
    SELECT i.id FROM lms_integrations i
    WHERE i.is_active AND CASE
        WHEN i.last_sync_status = 'running'
            THEN i.last_sync_at <= now() - :stale AND NOT {_LOCK_HELD}
        ELSE {NEXT_DUE} <= now()
        END
    ORDER BY i.last_sync_at NULLS FIRST
    FOR UPDATE SKIP LOCKED
)
UPDATE lms_integrations i
SET last_sync_status = 'running', last_sync_at = now(), sync_error_message = NULL,
    sync_run_id = gen_random_uuid()
FROM due WHERE i.id = due.id
RETURNING i.id, i.sync_run_id
""")

RETRYING = "retrying: "
"""How ``sync_error_message`` of a ``running`` row starts while its run waits for a retry."""
_CLAIM_ONE = text(f"""
UPDATE lms_integrations i
SET last_sync_status = 'running', last_sync_at = now(), sync_error_message = NULL,
    sync_run_id = gen_random_uuid()
FROM (SELECT id, coalesce(last_sync_status = 'running'
                          AND starts_with(sync_error_message, :retrying), false) AS retrying
      FROM lms_integrations WHERE id = :id FOR UPDATE) was
WHERE i.id = was.id AND i.is_active
  AND (CAST(:ignore_not_before AS boolean) OR i.not_before IS NULL OR i.not_before <= now())
  AND (i.last_sync_status IS DISTINCT FROM 'running' OR NOT {_LOCK_HELD})
RETURNING i.sync_run_id, was.retrying
""")
_REFUSED = text(f"""
SELECT i.is_active, i.last_sync_at, i.not_before, i.not_before > now() AS waiting,
       i.last_sync_status = 'running' AND {_LOCK_HELD} AS running
FROM lms_integrations i WHERE i.id = :id
""")
_SET_NOT_BEFORE = text("""
UPDATE lms_integrations SET not_before = now() + make_interval(secs => CAST(:seconds AS float8))
WHERE id = :id RETURNING not_before
""")


class ClaimedRun(NamedTuple):
    """A claimed sync: the integration, and the run id its message carries."""

    integration_id: uuid.UUID
    run_id: uuid.UUID


def claim_due(connection: Connection, policy: SyncPolicy | None = None) -> list[ClaimedRun]:
    """Claim every integration due now; the caller sends one sync message per claim after commit."""
    policy = policy or SyncPolicy()
    params = {**due_params(policy), "stale": policy.stale_after, "namespace": SYNC_LOCK_NAMESPACE}
    rows = connection.execute(_CLAIM_DUE, params)
    return [ClaimedRun(row.id, row.sync_run_id) for row in rows]


def due_params(policy: SyncPolicy) -> dict[str, dt.timedelta]:
    """The parameters of ``NEXT_DUE``."""
    return {"failed": policy.failed_retry_after, "partial": policy.partial_retry_after}


@dataclass(frozen=True)
class Claim:
    claimed: bool
    reason: str | None = None
    run_id: uuid.UUID | None = None
    """The claimed run's id (``lms_integrations.sync_run_id``): ``run_sync`` needs it."""
    took_over_retry: bool = False
    """The claim took the row from a run waiting for its retry, which then ends unrun."""


def claim_now(
    connection: Connection, integration_id: uuid.UUID, *, ignore_not_before: bool = False
) -> Claim:
    """Claim one integration whether due or not (an operator asked); not while one runs.

    A ``running`` row whose lock is free is taken over at once, under a new run
    id: its worker is dead, or its message still waits in the queue, or its
    run waits for a Celery retry; that message or retry finds the run
    superseded and ends without calling the LMS; ``took_over_retry`` says
    when it was a retry's (its ``sync_error_message`` starts ``RETRYING``),
    so the operator learns the run they waited for will not go on.  Nor
    before the integration's ``not_before`` unless ``ignore_not_before``.
    """
    key = {"id": integration_id, "namespace": SYNC_LOCK_NAMESPACE}
    params = {**key, "ignore_not_before": ignore_not_before, "retrying": RETRYING}
    claimed = connection.execute(_CLAIM_ONE, params).one_or_none()
    if claimed is not None:
        return Claim(True, run_id=claimed.sync_run_id, took_over_retry=claimed.retrying)
    row = connection.execute(_REFUSED, key).one_or_none()
    if row is None:
        return Claim(False, f"no LMS integration {integration_id}")
    if not row.is_active:
        return Claim(False, "the integration is disabled; `toolbox lms enable` it first")
    if row.running or not row.waiting:
        started = _utc(row.last_sync_at) if row.last_sync_at else "?"
        return Claim(False, f"a sync of this integration is already running (since {started})")
    return Claim(False, waiting_reason(row.not_before))


def waiting_reason(not_before: dt.datetime) -> str:
    """Why no sync starts before ``not_before``: a claim's refusal, a queued run's skip."""
    return (
        f"the LMS asked (Retry-After) not to be called before {_utc(not_before)}; "
        "beat syncs it then, or pass --ignore-retry-after to sync now anyway"
    )


def set_not_before(
    connection: Connection, integration_id: uuid.UUID, seconds: float
) -> dt.datetime:
    """The integration waits ``seconds`` from now (at most ``NOT_BEFORE_CAP``); returns until when.

    The newest wish wins, shorter or longer: it is the LMS's latest word.
    """
    seconds = min(max(seconds, 0.0), NOT_BEFORE_CAP.total_seconds())
    until: dt.datetime = connection.execute(
        _SET_NOT_BEFORE, {"id": integration_id, "seconds": seconds}
    ).scalar_one()
    return until


def _utc(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


_TRY_LOCK = text("SELECT pg_try_advisory_lock(:namespace, hashtext(:id))")


class SyncLock:
    """The integration's sync lock, held on a connection of its own (``sync_lock``).

    True while held.  PostgreSQL ending that connection's session (a restart,
    ``pg_terminate_backend``) frees the lock while the run goes on, and a
    claim may then take the sync over (an operator's at once, beat's once
    stale); ``keep`` notices at the next course and takes the lock again,
    or says another process has it.
    """

    def __init__(self, engine: Engine, integration_id: uuid.UUID) -> None:
        self._engine = engine
        self._key = {"namespace": SYNC_LOCK_NAMESPACE, "id": str(integration_id)}
        self._connection: Connection | None = None
        self.held = self._take()

    def __bool__(self) -> bool:
        return self.held

    def _take(self) -> bool:
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        held = False
        try:
            held = bool(connection.execute(_TRY_LOCK, self._key).scalar_one())
        finally:
            if not held:
                connection.close()
        if held:
            self._connection = connection
        return held

    def keep(self) -> Literal["held", "retaken", "lost"]:
        """``held`` all along, ``retaken`` after its session ended, else ``lost`` to another."""
        if self._connection is None:
            return "lost"
        try:
            self._connection.execute(text("SELECT 1"))
            return "held"
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
        self._connection.close()
        self._connection = None
        log.warning("the session holding LMS sync lock %s ended during the run", self._key["id"])
        self.held = self._take()
        return "retaken" if self.held else "lost"

    def release(self) -> None:
        if self._connection is not None:  # the pooled connection must not keep the lock
            try:
                _unlock(self._connection, self._key)
            finally:
                self._connection.close()
                self._connection = None
        self.held = False


@contextmanager
def sync_lock(engine: Engine, integration_id: uuid.UUID) -> Iterator[SyncLock]:
    """Hold the integration's sync lock for the block; false if another process has it."""
    lock = SyncLock(engine, integration_id)
    try:
        yield lock
    finally:
        lock.release()


def _unlock(connection: Connection, key: dict[str, object]) -> None:
    """Drop the sync lock; a session PostgreSQL ended meanwhile took the lock with it.

    That session's end (a restart, ``pg_terminate_backend``) must not turn a run
    that wrote its end into an error: the run's result would be lost to the
    caller (``lms sync --now``'s report, the worker's error log) for a lock
    that no longer exists.
    """
    unlock = text("SELECT pg_advisory_unlock(:namespace, hashtext(:id))")
    try:
        connection.execute(unlock, key)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        log.warning("the session holding LMS sync lock %s ended during the run", key["id"])


def limit_statements(connection: Connection, seconds: float) -> None:
    """Let each statement of the connection's transaction (lock waits included) take
    ``seconds`` at most: a process told to stop does not hang on a row or a slow database."""
    connection.execute(
        text("SELECT set_config('statement_timeout', :ms, true)"),
        {"ms": str(round(seconds * 1000))},
    )
