"""Periodic upkeep of the task table: the relay and the reaper (beat-driven)."""

from __future__ import annotations

import logging

from redis.exceptions import RedisError

from agents import recovery
from models.errors import RedeliveryExceeded
from workers import dispatch
from workers.app import app
from workers.celeryconfig import AGENT_QUEUE
from workers.db import get_engine
from workers.jobs.errors import record_exception
from workers.jobs.queues import read_queues
from workers.redis import get_redis
from workers.schedule import try_job_lock
from workers.settings import get_settings

log = logging.getLogger(__name__)

RELAY_AFTER_SECONDS = 3.0


@app.task(name="toolbox.maintenance.relay", ignore_result=True)
def relay() -> dict[str, int]:
    """Send messages for committed rows that never got one (or whose message was lost).

    ``undispatched`` counts ``pending`` rows and retries whose message never
    went out (``recovery.retries_unsent``), both sent here as soon as they are due.
    """
    with get_engine().begin() as connection:
        if not try_job_lock(connection, "relay"):
            return {"skipped": 1}
        ids = recovery.undispatched(connection, older_than=RELAY_AFTER_SECONDS)
        ids += recovery.retries_unsent(connection)
        lost = recovery.lost_in_broker(
            connection,
            older_than=get_settings().redispatch_after_seconds,
            waiting=_waiting_agent_messages(),
        )
        sent = dispatch.dispatch(connection, ids + lost)
    if sent:
        log.info("relay sent %d agent task message(s)", len(sent))
    return {"sent": len(sent), "undispatched": len(ids), "lost": len(lost)}


def _waiting_agent_messages() -> dict[int, int] | None:
    """Agent messages waiting in the broker per priority; None if Redis does not answer."""
    try:
        return read_queues(get_redis(), (AGENT_QUEUE,)).queues[0].by_priority
    except (RedisError, OSError):
        return None  # the relay's sends meet the outage and say so


@app.task(name="toolbox.maintenance.reaper", ignore_result=True)
def reaper() -> dict[str, int]:
    """Recover rows left ``running`` by a dead worker: run them again, or fail crash loops."""
    engine = get_engine()
    with engine.connect() as lease_connection, engine.begin() as connection:
        lease = lease_connection.execution_options(isolation_level="AUTOCOMMIT")
        if not try_job_lock(connection, "reaper"):
            return {"skipped": 1}
        found = recovery.orphans(connection, lease, max_deliveries=get_settings().max_deliveries)
        sent = dispatch.dispatch(connection, found.redispatch)
    for task_id in found.failed:
        record_exception(
            engine,
            RedeliveryExceeded("a worker died on every delivery of this task"),
            service="toolbox.agent.run",
            celery_task_id=str(task_id),
        )
    if found.redispatch or found.failed:
        log.warning(
            "reaper re-sent %d and failed %d task(s) left running by dead workers",
            len(sent),
            len(found.failed),
        )
    return {"redispatched": len(sent), "failed": len(found.failed)}
