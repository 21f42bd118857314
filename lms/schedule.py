"""Which integrations are due for a sync, and the claim that makes one sync run at a time.

A claim is one ``UPDATE lms_integrations SET last_sync_status = 'running'
... RETURNING``: of two beats (or a beat and an operator) only one gets the
row.  While a sync runs, its process holds a PostgreSQL advisory lock keyed
on the integration on a dedicated connection; the lock vanishes with the
process, so a row left ``running`` whose lock is free for ``stale_after``
belongs to a dead worker (or a message the broker lost) and is claimed again.

Due means: never synced, or ``sync_frequency_hours`` since the last sync;
after a failed or partial sync, sooner: after ``failed_retry_after`` or
``partial_retry_after`` (never later than the frequency), so an outage ends
with a catch-up instead of a day's wait.  Settings are read from the table
at every tick, so a changed frequency applies without restarting beat.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

#: First half of the two-int advisory lock key of a running sync ("LMS1").
SYNC_LOCK_NAMESPACE = 0x4C4D5331


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
#: When the integration ``i`` is next due (not meaningful while it runs).
NEXT_DUE = f"""coalesce(i.last_sync_at + CASE i.last_sync_status
        WHEN 'failed' THEN least({_EVERY}, :failed)
        WHEN 'partial' THEN least({_EVERY}, :partial)
        ELSE {_EVERY} END, now())"""

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
SET last_sync_status = 'running', last_sync_at = now(), sync_error_message = NULL
FROM due WHERE i.id = due.id
RETURNING i.id
""")

_CLAIM_ONE = text(f"""
UPDATE lms_integrations i
SET last_sync_status = 'running', last_sync_at = now(), sync_error_message = NULL
WHERE i.id = :id AND i.is_active
  AND (i.last_sync_status IS DISTINCT FROM 'running' OR NOT {_LOCK_HELD})
RETURNING i.id
""")


def claim_due(connection: Connection, policy: SyncPolicy | None = None) -> list[uuid.UUID]:
    """Claim every integration due now; the caller sends one sync message per id after commit."""
    policy = policy or SyncPolicy()
    params = {**due_params(policy), "stale": policy.stale_after, "namespace": SYNC_LOCK_NAMESPACE}
    return list(connection.execute(_CLAIM_DUE, params).scalars())


def due_params(policy: SyncPolicy) -> dict[str, dt.timedelta]:
    """The parameters of ``NEXT_DUE``."""
    return {"failed": policy.failed_retry_after, "partial": policy.partial_retry_after}


@dataclass(frozen=True)
class Claim:
    claimed: bool
    reason: str | None = None


def claim_now(connection: Connection, integration_id: uuid.UUID) -> Claim:
    """Claim one integration whether due or not (an operator asked); not while one runs.

    A ``running`` row whose lock is free is taken over at once: its worker is
    dead, or its message still waits in the queue and will find the sync done.
    """
    claimed = connection.execute(
        _CLAIM_ONE, {"id": integration_id, "namespace": SYNC_LOCK_NAMESPACE}
    ).scalar_one_or_none()
    if claimed is not None:
        return Claim(True)
    row = connection.execute(
        text("SELECT is_active, last_sync_at FROM lms_integrations WHERE id = :id"),
        {"id": integration_id},
    ).one_or_none()
    if row is None:
        return Claim(False, f"no LMS integration {integration_id}")
    if not row.is_active:
        return Claim(False, "the integration is disabled; `toolbox lms enable` it first")
    started = row.last_sync_at.strftime("%Y-%m-%d %H:%M:%S %Z") if row.last_sync_at else "?"
    return Claim(False, f"a sync of this integration is already running (since {started})")


@contextmanager
def sync_lock(engine: Engine, integration_id: uuid.UUID) -> Iterator[bool]:
    """Hold the integration's sync lock for the block; yields False if another process has it."""
    key = {"namespace": SYNC_LOCK_NAMESPACE, "id": str(integration_id)}
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        held = bool(
            connection.execute(
                text("SELECT pg_try_advisory_lock(:namespace, hashtext(:id))"), key
            ).scalar_one()
        )
        try:
            yield held
        finally:
            if held:  # the pooled connection must not keep the lock
                unlock = text("SELECT pg_advisory_unlock(:namespace, hashtext(:id))")
                connection.execute(unlock, key)
