"""The health job: one ``system_health_checks`` row a minute, with reasons.

It measures PostgreSQL and Redis round trips, the queue depths, which
workers answer a broadcast and which queues they consume, and the error
rate of agent tasks over the last hour; then it grades the stack:

- *unhealthy*: Redis unreachable, no worker answering, half the tasks
  of the last hour failing, or a database schema at another revision than
  the code's (``error_messages`` say which);
- *degraded*: a queue nobody consumes, a backlog, slow round trips, a high
  error rate or a fresh critical error (``warnings`` say which);
- *healthy* otherwise.

When a worker consumes the agents queue the active ``ai_agents`` rows get
``last_health_check = now()``.  Two runners at once write one row: the
writer takes a job lock and skips when a row younger than ``min_interval``
exists.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis
from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from workers.celeryconfig import AGENT_QUEUE, QUEUES
from workers.db import SCHEMA_REVISION
from workers.jobs.queues import BrokerSnapshot, read_queues
from workers.schedule import try_job_lock

SERVICE_NAME = "toolbox-worker"
DB_SLOW_MS = 250.0
REDIS_SLOW_MS = 100.0
QUEUE_BACKLOG = 1000
ERROR_RATE_DEGRADED = 0.2
ERROR_RATE_UNHEALTHY = 0.5
MIN_FINISHED_FOR_RATE = 5
MIN_INTERVAL_SECONDS = 30.0

WorkerProbe = Callable[[], dict[str, list[str]]]
"""Worker hostname -> the queues it consumes (e.g. from ``inspect().active_queues()``)."""


@dataclass
class HealthReport:
    status: str = "healthy"
    score: float = 100.0
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    db_ms: float | None = None
    redis_ms: float | None = None
    connections: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def grade(self) -> None:
        self.status = "unhealthy" if self.errors else "degraded" if self.warnings else "healthy"
        self.score = max(0.0, 100.0 - 40 * len(self.errors) - 10 * len(self.warnings))


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return round((time.perf_counter() - started) * 1000, 2)


def _database(connection: Connection, report: HealthReport) -> None:
    report.db_ms = _timed(lambda: connection.execute(text("SELECT 1")).scalar_one())
    report.connections = int(
        connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()")
        ).scalar_one()
    )
    if report.db_ms > DB_SLOW_MS:
        report.warnings.append(f"postgresql round trip {report.db_ms:.0f} ms (> {DB_SLOW_MS:.0f})")
    revision = connection.execute(
        text("SELECT version_num FROM alembic_version")
        if connection.execute(text("SELECT to_regclass('alembic_version')")).scalar_one()
        else text("SELECT NULL")
    ).scalar_one_or_none()
    if revision != SCHEMA_REVISION:  # downgraded under a running stack, or never migrated
        report.errors.append(
            f"database schema at revision {revision or 'none'}, the code needs"
            f" {SCHEMA_REVISION}: run `toolbox migrate`"
        )
    finished: dict[str, int] = dict(
        connection.execute(
            text(
                "SELECT status, count(*) FROM agent_tasks WHERE status IN ('completed', 'failed')"
                " AND completed_at > now() - interval '1 hour' GROUP BY status"
            )
        ).all()
    )
    retrying = connection.execute(
        text("SELECT count(*) FROM agent_tasks WHERE status = 'retrying'")
    ).scalar_one()
    critical = connection.execute(
        text(
            "SELECT count(*) FROM error_logs WHERE severity = 'critical'"
            " AND status IN ('new', 'investigating') AND last_seen > now() - interval '1 hour'"
        )
    ).scalar_one()
    completed, failed = int(finished.get("completed", 0)), int(finished.get("failed", 0))
    total = completed + failed
    rate = failed / total if total else 0.0
    report.details["tasks_last_hour"] = {
        "completed": completed,
        "failed": failed,
        "error_rate": round(rate, 4),
        "retrying_now": int(retrying),
        "critical_errors": int(critical),
    }
    if total >= MIN_FINISHED_FOR_RATE and rate >= ERROR_RATE_UNHEALTHY:
        report.errors.append(f"{rate:.0%} of {total} agent tasks failed in the last hour")
    elif total >= MIN_FINISHED_FOR_RATE and rate >= ERROR_RATE_DEGRADED:
        report.warnings.append(f"{rate:.0%} of {total} agent tasks failed in the last hour")
    if critical:
        report.warnings.append(f"{critical} critical error(s) in the last hour (see error_logs)")


def _broker(client: redis.Redis[bytes], report: HealthReport) -> None:
    try:
        report.redis_ms = _timed(client.ping)
        snapshot: BrokerSnapshot = read_queues(client)
    except (redis.RedisError, OSError) as exc:
        report.errors.append(f"redis unreachable: {type(exc).__name__}")
        return
    if report.redis_ms > REDIS_SLOW_MS:
        report.warnings.append(f"redis round trip {report.redis_ms:.0f} ms (> {REDIS_SLOW_MS:.0f})")
    report.details["queues"] = {q.name: q.depth for q in snapshot.queues}
    report.details["unacked"] = snapshot.unacked
    for queue in snapshot.queues:
        if queue.depth > QUEUE_BACKLOG:
            report.warnings.append(f"queue {queue.name} holds {queue.depth} messages")


def _workers(probe: WorkerProbe, report: HealthReport) -> None:
    try:
        workers = probe()
    except Exception as exc:
        report.errors.append(f"worker probe failed: {type(exc).__name__}")
        return
    report.details["workers"] = {host: sorted(queues) for host, queues in sorted(workers.items())}
    if not workers:
        report.errors.append("no worker answered")
        return
    consumed = {queue for queues in workers.values() for queue in queues}
    for queue in QUEUES:
        if queue not in consumed:
            report.warnings.append(f"no worker consumes the {queue} queue")


def measure(connection: Connection, client: redis.Redis[bytes], probe: WorkerProbe) -> HealthReport:
    """Take every measurement and grade them (reads only)."""
    report = HealthReport()
    _database(connection, report)
    _broker(client, report)
    _workers(probe, report)
    report.grade()
    return report


_INSERT = text(
    "INSERT INTO system_health_checks (service_name, service_version, instance_id, status,"
    " overall_score, response_time_ms, active_connections, db_response_time_ms,"
    " external_services_status, health_details, error_messages, warnings)"
    " VALUES (:service, :version, :instance, :status, :score, :response_ms, :connections,"
    " :db_ms, :external, :details, :errors, :warnings) RETURNING id"
).bindparams(bindparam("external", type_=JSONB), bindparam("details", type_=JSONB))


def write(
    connection: Connection,
    report: HealthReport,
    *,
    instance_id: str,
    version: str | None,
    elapsed_ms: float,
) -> None:
    external = {
        "postgresql": {"ok": True, "ms": report.db_ms},
        "redis": {"ok": report.redis_ms is not None, "ms": report.redis_ms},
    }
    connection.execute(
        _INSERT,
        {
            "service": SERVICE_NAME,
            "version": version,
            "instance": instance_id[:100],
            "status": report.status,
            "score": report.score,
            "response_ms": round(elapsed_ms),
            "connections": report.connections,
            "db_ms": None if report.db_ms is None else round(report.db_ms),
            "external": external,
            "details": report.details,
            "errors": report.errors or None,
            "warnings": report.warnings or None,
        },
    )
    workers: dict[str, list[str]] = report.details.get("workers", {})
    if any(AGENT_QUEUE in queues for queues in workers.values()):
        connection.execute(text("UPDATE ai_agents SET last_health_check = now() WHERE is_active"))


def run_health_check(
    engine: Engine,
    client: redis.Redis[bytes],
    probe: WorkerProbe,
    *,
    instance_id: str,
    version: str | None = None,
    min_interval: float = MIN_INTERVAL_SECONDS,
) -> HealthReport | None:
    """Measure and write one row; None when another runner wrote one moments ago."""
    started = time.perf_counter()
    with engine.connect() as connection:
        report = measure(connection, client, probe)
    elapsed_ms = (time.perf_counter() - started) * 1000
    with engine.begin() as connection:
        if not try_job_lock(connection, "health"):
            return None
        recent = connection.execute(
            text(
                "SELECT 1 FROM system_health_checks WHERE service_name = :service"
                " AND checked_at > now() - make_interval(secs => :interval) LIMIT 1"
            ),
            {"service": SERVICE_NAME, "interval": min_interval},
        ).first()
        if recent is not None:
            return None
        write(connection, report, instance_id=instance_id, version=version, elapsed_ms=elapsed_ms)
    return report
