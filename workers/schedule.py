"""The beat schedule, and the guard that makes a second beat harmless.

Every periodic task is idempotent; on top of that ``claim_slot`` inserts one
``periodic_job_runs`` row per job and time slot, so when two beat processes
fire the same job only the first message does the work.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

SCHEDULE: dict[str, tuple[str, float]] = {
    "relay": ("toolbox.maintenance.relay", 5.0),
    "reaper": ("toolbox.maintenance.reaper", 15.0),
    "health": ("toolbox.maintenance.health", 60.0),
    "sessions": ("toolbox.maintenance.sessions", 60.0),
    "progress": ("toolbox.maintenance.progress", 300.0),
    "retention": ("toolbox.maintenance.retention", 3600.0),
    "lms-sync": ("toolbox.lms.schedule_syncs", 60.0),
    "lms-passback": ("toolbox.lms.drain_passbacks", 120.0),
}


def beat_schedule() -> dict[str, Any]:
    return {
        name: {"task": task, "schedule": seconds, "options": {"expires": seconds * 2}}
        for name, (task, seconds) in SCHEDULE.items()
    }


def slot_start(now: dt.datetime, every_seconds: float) -> dt.datetime:
    epoch = now.timestamp()
    return dt.datetime.fromtimestamp(epoch - epoch % every_seconds, dt.UTC)


def claim_slot(connection: Connection, job: str, every_seconds: float) -> dt.datetime | None:
    """The current slot for the first caller of ``job`` in it; None for duplicates."""
    now = connection.execute(text("SELECT now()")).scalar_one()
    slot = slot_start(now, every_seconds)
    inserted = connection.execute(
        text(
            "INSERT INTO periodic_job_runs (job_name, slot_start) VALUES (:job, :slot)"
            " ON CONFLICT (job_name, slot_start) DO NOTHING RETURNING id"
        ),
        {"job": job, "slot": slot},
    ).scalar_one_or_none()
    return None if inserted is None else slot


def finish_slot(
    connection: Connection, job: str, slot: dt.datetime, status: str, detail: dict[str, Any]
) -> None:
    connection.execute(
        text(
            "UPDATE periodic_job_runs SET status = :status, finished_at = now(), detail = :detail"
            " WHERE job_name = :job AND slot_start = :slot"
        ).bindparams(bindparam("detail", type_=JSONB)),
        {"job": job, "slot": slot, "status": status, "detail": detail},
    )


def try_job_lock(connection: Connection, job: str) -> bool:
    """A transaction-level lock: one runner of ``job`` at a time, across all beats."""
    return bool(
        connection.execute(
            text("SELECT pg_try_advisory_xact_lock(hashtextextended(:job, 11))"), {"job": job}
        ).scalar_one()
    )
