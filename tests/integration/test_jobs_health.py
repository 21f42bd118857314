"""The health job and queue depths on real PostgreSQL and Redis."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, text

from tests.integration.ops_support import count, insert, twice_at_once
from workers import migrate
from workers.celeryconfig import QUEUES
from workers.db import SCHEMA_REVISION, get_engine
from workers.jobs.health import HealthReport, run_health_check
from workers.jobs.queues import PRIORITY_SEPARATOR, read_queues
from workers.redis import client_url

ALL_QUEUES = {"agents@box": ["agents"], "ops@box": ["lms", "maintenance", "passback"]}


@pytest.fixture
def broker(redis_url: str) -> Iterator[redis.Redis[bytes]]:
    client = redis.Redis.from_url(client_url(redis_url))
    yield client
    client.close()


def latest(engine: Engine) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT * FROM system_health_checks ORDER BY checked_at DESC LIMIT 1")
        ).one()


def finished_tasks(engine: Engine, completed: int, failed: int) -> None:
    with engine.begin() as connection:
        agent = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()
        for status in ["completed"] * completed + ["failed"] * failed:
            insert(
                connection, "agent_tasks", json=("input_data",), agent_id=agent,
                task_type="echo", task_name="echo task", input_data={}, status=status,
                completed_at_ago=60,
            )  # fmt: skip


def test_queue_depths_include_priority_lists(broker: redis.Redis[bytes]) -> None:
    broker.rpush("agents", b"a", b"b")
    broker.rpush(f"agents{PRIORITY_SEPARATOR}3", b"c")
    broker.rpush(f"maintenance{PRIORITY_SEPARATOR}9", b"d")
    broker.hset("unacked", "tag", b"msg")
    snapshot = read_queues(broker)
    depths = {queue.name: queue for queue in snapshot.queues}
    assert [queue.name for queue in snapshot.queues] == list(QUEUES)
    assert depths["agents"].depth == 3 and depths["agents"].by_priority == {6: 1, 9: 2}
    assert depths["maintenance"].by_priority == {0: 1} and depths["lms"].depth == 0
    assert (snapshot.unacked, snapshot.total) == (1, 4)


def test_healthy_stack_writes_a_row_and_marks_the_agents(
    engine: Engine, broker: redis.Redis[bytes]
) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE ai_agents SET is_active = false WHERE agent_type = 'terrain'")
        )
    report = run_health_check(engine, broker, lambda: ALL_QUEUES, instance_id="maint@box")
    assert isinstance(report, HealthReport) and report.status == "healthy"
    row = latest(engine)
    assert (row.status, float(row.overall_score), row.instance_id) == (
        "healthy",
        100.0,
        "maint@box",
    )
    assert row.db_response_time_ms is not None and row.active_connections >= 1
    assert row.external_services_status["redis"]["ok"] is True
    assert row.health_details["queues"] == {"agents": 0, "lms": 0, "passback": 0, "maintenance": 0}
    assert row.health_details["workers"] == ALL_QUEUES
    assert row.error_messages is None and row.warnings is None
    stale = count(engine, "SELECT count(*) FROM ai_agents WHERE last_health_check IS NULL")
    assert stale == 1, "every active agent is marked, the inactive one is not"


def test_backlog_missing_consumer_and_failures_degrade(
    engine: Engine, broker: redis.Redis[bytes]
) -> None:
    broker.rpush("lms", *[b"m"] * 1001)
    finished_tasks(engine, completed=6, failed=2)
    report = run_health_check(engine, broker, lambda: {"agents@box": ["agents"]}, instance_id="x")
    assert report is not None and report.status == "degraded"
    row = latest(engine)
    assert row.status == "degraded" and float(row.overall_score) < 100
    assert row.error_messages is None
    assert "queue lms holds 1001 messages" in row.warnings
    assert "no worker consumes the maintenance queue" in row.warnings
    assert "25% of 8 agent tasks failed in the last hour" in row.warnings
    assert row.health_details["tasks_last_hour"]["error_rate"] == 0.25


def test_no_broker_and_no_workers_is_unhealthy(engine: Engine) -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    report = run_health_check(engine, unreachable, lambda: {}, instance_id="x")
    assert report is not None and report.status == "unhealthy"
    row = latest(engine)
    assert row.status == "unhealthy"
    assert row.error_messages == ["redis unreachable: ConnectionError", "no worker answered"]
    assert row.external_services_status["redis"]["ok"] is False
    assert count(engine, "SELECT count(*) FROM ai_agents WHERE last_health_check IS NOT NULL") == 0


def test_a_failing_probe_is_a_reason_not_a_crash(
    engine: Engine, broker: redis.Redis[bytes]
) -> None:
    def probe() -> dict[str, list[str]]:
        raise TimeoutError("no reply")

    report = run_health_check(engine, broker, probe, instance_id="x")
    assert report is not None and report.errors == ["worker probe failed: TimeoutError"]


def test_two_runs_at_once_write_one_row(engine: Engine, broker: redis.Redis[bytes]) -> None:
    results = twice_at_once(
        lambda: run_health_check(engine, broker, lambda: ALL_QUEUES, instance_id="x")
    )
    assert sorted(result is None for result in results) == [False, True]
    assert count(engine, "SELECT count(*) FROM system_health_checks") == 1
    assert run_health_check(engine, broker, lambda: ALL_QUEUES, instance_id="x") is None
    assert run_health_check(engine, broker, lambda: ALL_QUEUES, instance_id="x", min_interval=0)
    assert count(engine, "SELECT count(*) FROM system_health_checks") == 2


def test_a_schema_at_another_revision_is_unhealthy_and_each_process_says_so_once(
    engine: Engine,
    broker: redis.Redis[bytes],
    toolbox_env: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``alembic downgrade -1`` under a running stack: commands and tasks went on at the old
    schema without a word (and wrote states the old key let through twice)."""
    assert SCHEMA_REVISION == migrate.head_revision(), "db.SCHEMA_REVISION follows the head"
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    report = run_health_check(engine, broker, lambda: ALL_QUEUES, instance_id="x")
    assert report is not None and report.status == "unhealthy"
    assert report.errors == [
        f"database schema at revision 0007, the code needs {SCHEMA_REVISION}: run `toolbox migrate`"
    ]
    with caplog.at_level(logging.WARNING, logger="workers.db"):
        for _ in range(2):
            with get_engine().connect() as connection:
                connection.execute(text("SELECT 1"))
    assert [r.getMessage() for r in caplog.records if r.name == "workers.db"] == [
        f"the database {engine.url.database} is at schema revision 0007, this code needs"
        f" {SCHEMA_REVISION}: run `toolbox migrate`; until then tasks and commands may fail or"
        " write what the code does not expect"
    ]
