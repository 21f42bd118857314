"""A Prometheus exporter for what Flower's ``/metrics`` cannot see.

Flower counts Celery events (tasks sent, succeeded, runtimes) from the
moment it starts.  This exporter reads the durable side on every scrape:
queue depths (per priority) and unacknowledged messages from Redis; agent
tasks by agent and status, retries, durations, open error groups, grade
passbacks and the latest health check from PostgreSQL.  Labels are agent
kinds, queues and statuses only: no ids, no personal data.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable, Iterator
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import redis
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from models.errors import ConfigurationError
from workers.jobs.queues import read_queues
from workers.ports import PORT_IN_USE, cannot_listen
from workers.redis import refusal, refused_message

log = logging.getLogger(__name__)

DEFAULT_PORT = 9808
WINDOW = "interval '1 hour'"


def _gauge(name: str, doc: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


def broker_metrics(client: redis.Redis[bytes]) -> list[Metric]:
    snapshot = read_queues(client)
    depth = _gauge("toolbox_queue_depth", "Messages waiting in a queue.", ["queue"])
    by_priority = _gauge(
        "toolbox_queue_priority_depth",
        "Messages waiting in a queue per task priority (9 highest).",
        ["queue", "priority"],
    )
    for queue in snapshot.queues:
        depth.add_metric([queue.name], queue.depth)
        for priority, count in queue.by_priority.items():
            by_priority.add_metric([queue.name, str(priority)], count)
    unacked = GaugeMetricFamily(
        "toolbox_queue_unacked", "Messages delivered to a worker and not yet acknowledged."
    )
    unacked.add_metric([], snapshot.unacked)
    return [depth, by_priority, unacked]


def _task_metrics(connection: Connection) -> list[Metric]:
    active = _gauge(
        "toolbox_agent_tasks", "Agent tasks not finished yet, by status.", ["agent", "status"]
    )
    for agent, status, count in connection.execute(
        text(
            "SELECT a.agent_type, t.status, count(*) FROM agent_tasks t"
            " JOIN ai_agents a ON a.id = t.agent_id"
            " WHERE t.status IN ('pending', 'queued', 'running', 'retrying')"
            " GROUP BY a.agent_type, t.status"
        )
    ):
        active.add_metric([agent, status], count)
    finished = _gauge(
        "toolbox_agent_tasks_finished_last_hour",
        "Agent tasks finished in the last hour, by final status.",
        ["agent", "status"],
    )
    retries = _gauge(
        "toolbox_agent_task_retries_last_hour",
        "Retries spent by the agent tasks that finished in the last hour.",
        ["agent"],
    )
    duration = _gauge(
        "toolbox_agent_task_duration_seconds",
        "Run time of agent tasks completed in the last hour (quantile 0.5, 0.95 and 1).",
        ["agent", "quantile"],
    )
    rows = connection.execute(
        text(
            "SELECT a.agent_type, t.status, count(*) AS tasks, sum(t.retry_count) AS retries,"
            " percentile_cont(ARRAY[0.5, 0.95]) WITHIN GROUP (ORDER BY s.seconds)"
            " AS quantiles, max(s.seconds) AS longest FROM agent_tasks t"
            " JOIN ai_agents a ON a.id = t.agent_id"
            # to the microsecond: duration_seconds is rounded up to whole seconds
            " CROSS JOIN LATERAL (SELECT coalesce(extract(epoch FROM t.completed_at"
            " - t.started_at)::float8, t.duration_seconds) AS seconds) s"
            f" WHERE t.status IN ('completed', 'failed', 'cancelled')"
            f" AND t.completed_at > now() - {WINDOW} GROUP BY a.agent_type, t.status"
        )
    ).all()
    spent: dict[str, int] = {}
    for row in rows:
        finished.add_metric([row.agent_type, row.status], row.tasks)
        spent[row.agent_type] = spent.get(row.agent_type, 0) + int(row.retries or 0)
        if row.status == "completed" and row.longest is not None:
            median, p95 = row.quantiles
            duration.add_metric([row.agent_type, "0.5"], median)
            duration.add_metric([row.agent_type, "0.95"], p95)
            duration.add_metric([row.agent_type, "1"], row.longest)
    for agent, count in spent.items():
        retries.add_metric([agent], count)
    return [active, finished, retries, duration]


def _platform_metrics(connection: Connection) -> list[Metric]:
    errors = _gauge(
        "toolbox_error_groups_open",
        "Distinct errors (error_logs rows) new or under investigation, by severity.",
        ["severity"],
    )
    for severity, count in connection.execute(
        text(
            "SELECT severity, count(*) FROM error_logs WHERE status IN ('new', 'investigating')"
            " GROUP BY severity"
        )
    ):
        errors.add_metric([severity], count)
    passbacks = _gauge("toolbox_lms_passbacks", "Grade passbacks not yet sent.", ["status"])
    for status, count in connection.execute(
        text(
            "SELECT status, count(*) FROM lms_grade_passbacks WHERE status <> 'success'"
            " GROUP BY status"
        )
    ):
        passbacks.add_metric([status], count)
    health = _gauge(
        "toolbox_health_status",
        "1 for the status of the latest health check (healthy, degraded, unhealthy).",
        ["status"],
    )
    age = GaugeMetricFamily(
        "toolbox_health_check_age_seconds", "Seconds since the latest health check was written."
    )
    latest = connection.execute(
        text(
            "SELECT status, extract(epoch FROM now() - checked_at) AS age"
            " FROM system_health_checks ORDER BY checked_at DESC LIMIT 1"
        )
    ).one_or_none()
    if latest is not None:
        for status in ("healthy", "degraded", "unhealthy"):
            health.add_metric([status], 1.0 if latest.status == status else 0.0)
        age.add_metric([], float(latest.age))
    return [errors, passbacks, health, age]


def database_metrics(connection: Connection) -> list[Metric]:
    return _task_metrics(connection) + _platform_metrics(connection)


class ToolboxCollector(Collector):
    """Reads Redis and PostgreSQL on every scrape; a component that is down is ``toolbox_up 0``.

    A Redis that refuses ``TOOLBOX_REDIS_URL``'s settings is ``0`` too, logged as refusing
    the setting (``workers.redis.refused_message``), not as unreachable.
    """

    def __init__(
        self, engine: Callable[[], Engine], client: Callable[[], redis.Redis[bytes]]
    ) -> None:
        self._engine = engine
        self._client = client

    def collect(self) -> Iterator[Metric]:
        up = _gauge("toolbox_up", "1 when the exporter could read the component.", ["component"])
        try:
            yield from broker_metrics(self._client())
            up.add_metric(["redis"], 1)
        except (redis.RedisError, OSError) as exc:
            refused = refusal(exc)  # a setting to fix, which waiting will not
            if refused is None:
                log.warning("metrics: redis unreachable (%s)", type(exc).__name__)
            else:
                log.warning("metrics: %s", refused_message(refused))
            up.add_metric(["redis"], 0)
        try:
            with self._engine().connect() as connection:
                found = database_metrics(connection)
            yield from found
            up.add_metric(["postgresql"], 1)
        except SQLAlchemyError as exc:
            log.warning("metrics: postgresql unreachable (%s)", type(exc).__name__)
            up.add_metric(["postgresql"], 0)
        yield up


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        del format, args


class CannotListen(ConfigurationError):
    """The exporter cannot listen where it was told; ``flag`` names the option to change."""

    def __init__(self, message: str, *, flag: str) -> None:
        super().__init__(message)
        self.flag = flag


def listen(
    engine: Callable[[], Engine],
    client: Callable[[], redis.Redis[bytes]],
    *,
    port: int = DEFAULT_PORT,
    address: str = "0.0.0.0",
) -> WSGIServer:
    """The exporter's server, bound to ``address:port``; ``CannotListen`` says why it is not."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ToolboxCollector(engine, client))
    try:
        return make_server(address, port, make_wsgi_app(registry), handler_class=_QuietHandler)
    except socket.gaierror:
        message = f"cannot listen on {address}: no such address"
        raise CannotListen(message, flag="--address") from None
    except OSError as exc:
        if exc.errno == errno.EADDRNOTAVAIL:
            reason, flag = "the address is not one of this machine's", "--address"
        elif exc.errno == errno.EADDRINUSE:
            reason, flag = PORT_IN_USE, "--port"
        elif exc.errno == errno.EACCES:
            reason, flag = "permission denied (ports below 1024 need privileges)", "--port"
        else:
            reason, flag = (exc.strerror or type(exc).__name__).lower(), "--port"
        raise CannotListen(cannot_listen(address, port, reason), flag=flag) from None


def run(server: WSGIServer) -> None:
    """Serve ``/metrics`` on a server from ``listen`` until interrupted."""
    address, port = server.server_address[:2]
    log.info("metrics exporter on %s:%d", address, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
