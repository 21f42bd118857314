"""What ``toolbox status`` shows: the durable picture Flower forgets on restart.

Queue depths come from Redis; everything else from PostgreSQL: tasks per
agent, failures of the last hour, LMS syncs and grade passbacks, the
latest health check and the last run of every periodic job.  Only counts,
ids, names and error text: no payload, no personal data.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

import redis
from sqlalchemy import Connection, text

from workers.jobs.errors import normalise_message
from workers.jobs.queues import read_queues
from workers.redis import refusal

ERRORS_SHOWN = 10
MESSAGE_WIDTH = 160
_QUERY = re.compile(r"(\bhttps?://[^\s?#]+)\?[^\s:;,)]*")


def brief(message: str) -> str:
    """``message`` for a table cell: URL query strings elided (an LMS error starts with the
    request's URL, whose ``include[]=...`` pushed the cause past the cut), then cut."""
    message = _QUERY.sub(r"\1?...", message)
    if len(message) <= MESSAGE_WIDTH:
        return message
    return message[: MESSAGE_WIDTH - 3] + "..."


@dataclasses.dataclass
class Status:
    generated_at: dt.datetime
    queues: list[dict[str, Any]]
    unacked: int | None
    broker_error: str | None
    agents: list[dict[str, Any]]
    errors_last_hour: list[dict[str, Any]]
    lms: list[dict[str, Any]]
    passbacks: dict[str, Any]
    health: dict[str, Any] | None
    jobs: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _rows(connection: Connection, sql: str) -> list[dict[str, Any]]:
    return [dict(row) for row in connection.execute(text(sql)).mappings()]


def agents(connection: Connection) -> list[dict[str, Any]]:
    return _rows(
        connection,
        "SELECT a.agent_type AS agent, a.is_active AS active,"
        " a.max_concurrent_tasks AS slots, a.last_health_check,"
        " count(t.id) FILTER (WHERE t.status = 'running') AS running,"
        " count(t.id) FILTER (WHERE t.status IN ('pending', 'queued')) AS waiting,"
        " count(t.id) FILTER (WHERE t.status = 'retrying') AS retrying,"
        " count(t.id) FILTER (WHERE t.status = 'completed') AS completed_last_hour,"
        " count(t.id) FILTER (WHERE t.status = 'failed') AS failed_last_hour"
        " FROM ai_agents a LEFT JOIN agent_tasks t ON t.agent_id = a.id"
        " AND (t.status IN ('pending', 'queued', 'running', 'retrying')"
        " OR (t.status IN ('completed', 'failed') AND t.completed_at > now() - interval '1 hour'))"
        " GROUP BY a.id ORDER BY a.agent_type, a.name",
    )


def recent_errors(connection: Connection) -> list[dict[str, Any]]:
    rows = _rows(
        connection,
        "SELECT error_type, service_name AS service, severity, status, occurrence_count,"
        " first_seen, last_seen, error_message AS message FROM error_logs"
        " WHERE last_seen > now() - interval '1 hour'"
        f" ORDER BY last_seen DESC LIMIT {ERRORS_SHOWN}",
    )
    for row in rows:
        row["message"] = brief(normalise_message(row["message"]))
    return rows


def lms_integrations(connection: Connection) -> list[dict[str, Any]]:
    """Each integration's last sync, and ``not_before``, the time its LMS asked (Retry-After)
    not to be called before, while that lies ahead (else None)."""
    rows = _rows(
        connection,
        "SELECT id, platform_name AS platform, institution_name AS institution,"
        " is_active AS active, sync_frequency_hours, last_sync_at, last_sync_status,"
        " sync_error_message AS error,"
        " CASE WHEN not_before > now() THEN not_before END AS not_before"
        " FROM lms_integrations ORDER BY institution_name, platform_name",
    )
    for row in rows:
        if row["error"]:
            row["error"] = brief(str(row["error"]))
    return rows


def passbacks(connection: Connection) -> dict[str, Any]:
    row = connection.execute(
        text(
            "SELECT count(*) FILTER (WHERE status = 'pending') AS pending,"
            " count(*) FILTER (WHERE status = 'sending') AS sending,"
            " count(*) FILTER (WHERE status = 'failed') AS failed,"
            " min(created_at) FILTER (WHERE status = 'pending') AS oldest_pending"
            " FROM lms_grade_passbacks WHERE status <> 'success'"
        )
    ).mappings().one()  # fmt: skip
    return dict(row)


def latest_health(connection: Connection) -> dict[str, Any] | None:
    row = connection.execute(
        text(
            "SELECT status, overall_score AS score, checked_at, instance_id,"
            " error_messages AS errors, warnings FROM system_health_checks"
            " ORDER BY checked_at DESC LIMIT 1"
        )
    ).mappings().one_or_none()  # fmt: skip
    if row is None:
        return None
    health = dict(row)
    health["score"] = None if health["score"] is None else float(health["score"])
    health["errors"], health["warnings"] = health["errors"] or [], health["warnings"] or []
    return health


def periodic_jobs(connection: Connection) -> list[dict[str, Any]]:
    return _rows(
        connection,
        "SELECT DISTINCT ON (job_name) job_name AS job, slot_start, status, finished_at, detail"
        " FROM periodic_job_runs ORDER BY job_name, slot_start DESC",
    )


def collect_status(connection: Connection, client: redis.Redis[bytes]) -> Status:
    queues: list[dict[str, Any]] = []
    unacked: int | None = None
    broker_error: str | None = None
    try:
        snapshot = read_queues(client)
    except (redis.RedisError, OSError) as exc:
        if refusal(exc) is not None:  # a setting to fix: the caller says so (toolbox status)
            raise
        broker_error = f"redis unreachable: {type(exc).__name__}"
    else:
        queues = [dataclasses.asdict(queue) for queue in snapshot.queues]
        unacked = snapshot.unacked
    return Status(
        generated_at=connection.execute(text("SELECT now()")).scalar_one(),
        queues=queues,
        unacked=unacked,
        broker_error=broker_error,
        agents=agents(connection),
        errors_last_hour=recent_errors(connection),
        lms=lms_integrations(connection),
        passbacks=passbacks(connection),
        health=latest_health(connection),
        jobs=periodic_jobs(connection),
    )
