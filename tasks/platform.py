"""The platform's periodic work as thin tasks (beat fires them; jobs live in ``workers.jobs``).

Every periodic task claims its schedule slot first (``periodic_job_runs``),
so when two beats fire the same job only one message does the work and
the row keeps the outcome; the job functions are safe to run twice anyway.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

from celery import Task
from sqlalchemy import Engine

from workers.app import app
from workers.db import get_engine
from workers.jobs import health, progress, retention, sessions
from workers.jobs.errors import service_version
from workers.redis import get_redis
from workers.schedule import SCHEDULE, claim_slot, finish_slot

log = logging.getLogger(__name__)

PROBE_TIMEOUT_SECONDS = 1.0


def run_periodic(job: str, work: Callable[[Engine], dict[str, Any]]) -> dict[str, Any]:
    engine = get_engine()
    with engine.begin() as connection:
        slot = claim_slot(connection, job, SCHEDULE[job][1])
    if slot is None:
        return {"skipped": 1}
    try:
        detail = work(engine)
    except Exception as exc:
        with engine.begin() as connection:
            finish_slot(connection, job, slot, "failed", {"error": type(exc).__name__})
        raise
    with engine.begin() as connection:
        finish_slot(connection, job, slot, "success", detail)
    if any(detail.values()):
        log.info("%s: %s", job, detail)
    return detail


def probe_workers() -> dict[str, list[str]]:
    """Worker hostname -> queues it consumes; one broadcast, answers for one second."""
    replies = app.control.inspect(timeout=PROBE_TIMEOUT_SECONDS).active_queues() or {}
    return {host: [queue["name"] for queue in queues] for host, queues in replies.items()}


@app.task(name="toolbox.maintenance.health", bind=True, ignore_result=True)
def health_check(self: Task) -> dict[str, Any]:
    """Write one ``system_health_checks`` row (and the agents' ``last_health_check``)."""
    instance = self.request.hostname or "worker"

    def work(engine: Engine) -> dict[str, Any]:
        report = health.run_health_check(
            engine, get_redis(), probe_workers, instance_id=instance, version=service_version()
        )
        if report is None:
            return {"written": 0}
        if report.status != "healthy":
            log.warning("health %s: %s", report.status, "; ".join(report.errors + report.warnings))
        return {"written": 1, "status": report.status}

    return run_periodic("health", work)


@app.task(name="toolbox.maintenance.progress", ignore_result=True)
def progress_catch_up() -> dict[str, Any]:
    """Record quiz attempts completed but not yet in progress and analytics."""
    return run_periodic("progress", progress.catch_up)


@app.task(name="toolbox.maintenance.record_attempt", ignore_result=True)
def record_attempt(attempt_id: str) -> bool:
    """Record one completed attempt now (services call this; the catch-up covers misses)."""
    with get_engine().begin() as connection:
        return progress.record_attempt(connection, uuid.UUID(str(attempt_id)))


@app.task(name="toolbox.maintenance.sessions", ignore_result=True)
def close_sessions() -> dict[str, Any]:
    """Close plugins, game, login, socket and collaboration sessions left open."""
    return run_periodic("sessions", sessions.close_abandoned)


@app.task(name="toolbox.maintenance.retention", ignore_result=True)
def apply_retention() -> dict[str, Any]:
    """Purge, anonymise or mark old rows in small batches."""
    return run_periodic("retention", retention.apply_retention)
