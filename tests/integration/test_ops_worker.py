"""Operations against a real worker: Celery's own commands, platform tasks, failures, logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, make_url, text

from tests.integration.ops_support import wait_until
from tests.workers import StartWorker
from workers import client

pytestmark = pytest.mark.worker


def celery(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "workers.app", *args],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def one(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).one_or_none()


def test_standard_celery_commands(start_worker: StartWorker, toolbox_env: dict[str, str]) -> None:
    worker = start_worker(queues="agents,maintenance")
    node = f"{worker.name}@{socket.gethostname()}"
    commands = {
        "ping": ("inspect", "ping", "-d", node, "--timeout", "10"),
        "queues": ("inspect", "active_queues", "-d", node, "--timeout", "10"),
        "registered": ("inspect", "registered", "-d", node, "--timeout", "10"),
        "status": ("status", "--timeout", "5"),
        "report": ("report",),
    }
    with ThreadPoolExecutor(len(commands)) as pool:
        futures = {name: pool.submit(celery, toolbox_env, *args) for name, args in commands.items()}
        ping, queues, registered, status, report = (futures[name].result() for name in commands)
    assert ping.returncode == 0 and "pong" in ping.stdout, ping.stderr
    assert "'name': 'agents'" in queues.stdout and "'name': 'maintenance'" in queues.stdout
    for task in (
        "toolbox.agent.run",
        "toolbox.maintenance.health",
        "toolbox.maintenance.retention",
    ):
        assert task in registered.stdout
    assert status.returncode == 0 and node in status.stdout and "1 node online" in status.stdout
    assert report.returncode == 0, report.stderr
    assert "software -> celery:5." in report.stdout and "toolbox.agent.*" in report.stdout


def test_platform_tasks_failures_and_logs_through_a_worker(
    start_worker: StartWorker, engine: Engine
) -> None:
    from workers.app import app

    worker = start_worker()
    app.send_task("toolbox.maintenance.health")
    health = wait_until(
        lambda: one(engine, "SELECT * FROM system_health_checks"), 30, "a health check row"
    )
    node = f"{worker.name}@{socket.gethostname()}"
    assert health.health_details["workers"][node] == ["agents", "lms", "maintenance", "passback"]
    assert health.status == "healthy", (health.error_messages, health.warnings)
    run = one(engine, "SELECT status, detail FROM periodic_job_runs WHERE job_name = 'health'")
    assert run is not None and run.status in ("running", "success")

    app.send_task("toolbox.maintenance.record_attempt", args=[str(uuid.uuid4())])
    crashed = wait_until(
        lambda: one(engine, "SELECT * FROM error_logs WHERE service_name = :s",
                    s="toolbox.maintenance.record_attempt"),
        30, "the failed maintenance task in error_logs",
    )  # fmt: skip
    assert (crashed.error_type, crashed.severity) == ("NotFound", "high")

    failing = client.submit(
        "echo", {"message": "Ada's essay", "fail_phase": "problem", "fail_kind": "permanent"}
    )
    workflow = uuid.uuid4()
    passing = client.submit("echo", {"message": "Ada's essay"}, workflow_id=workflow)
    assert client.wait(failing, timeout=30).status == "failed"
    assert client.wait(passing, timeout=30).status == "completed"
    failed = wait_until(
        lambda: one(engine, "SELECT * FROM error_logs WHERE task_id = :id", id=failing),
        10, "the failed agent task in error_logs",
    )  # fmt: skip
    assert failed.service_name == "toolbox.agent.echo" and failed.severity == "high"
    assert "Ada" not in json.dumps(failed.request_data) + failed.error_message

    def success_line() -> dict[str, Any] | None:
        for line in worker.log().splitlines():
            if line.startswith("{") and "succeeded" in line and str(passing) in line:
                entry: dict[str, Any] = json.loads(line)
                return entry
        return None

    entry = wait_until(success_line, 10, "the success log line")
    assert entry["workflow_id"] == str(workflow) and entry["task"] == "toolbox.agent.run"
    assert "Ada" not in worker.log(), "no payload in the worker's logs"


def test_pool_children_inherit_a_frozen_heap(start_worker: StartWorker) -> None:
    """The imported modules are frozen before the pool forks, so Celery's collection before
    each replacement child does not scan them (it held the main process about 0.1 s).
    They include the model-calling modules the command line leaves out."""
    from workers.app import app
    from workers.redis import get_redis

    worker = start_worker(queues="maintenance", concurrency=1, include="tests.overrun_tasks")
    key = f"test:heap:{uuid.uuid4().hex}"
    reports: list[tuple[int, int, str]] = []

    def report() -> None:
        app.send_task("toolbox.tests.heap", args=[key], queue="maintenance")
        item = get_redis().blpop([key], timeout=20)
        assert item is not None, worker.log()[-2000:]
        pid, frozen, inherited = item[1].decode().split()
        reports.append((int(pid), int(frozen), inherited))

    report()
    (first,) = worker.pool_children()
    first.kill()  # the pool forks a replacement from the main process
    wait_until(
        lambda: [p.pid for p in worker.pool_children()] not in ([], [first.pid]),
        30,
        "a replacement pool child",
    )
    report()
    (first_pid, first_frozen, first_has), (second_pid, second_frozen, second_has) = reports
    assert first_pid != second_pid
    assert first_frozen > 50_000 and second_frozen > 50_000
    assert first_has == second_has == "1"


def test_a_worker_on_an_unmigrated_database_says_to_migrate(
    start_worker: StartWorker, empty_database_url: str
) -> None:
    """Its tasks fail on a missing table; before, only their tracebacks said why."""
    worker = start_worker(
        queues="maintenance", concurrency=1,
        extra_env={"TOOLBOX_DATABASE_URL": empty_database_url},
    )  # fmt: skip
    wait_until(lambda: "toolbox migrate" in worker.log(), 20, "the schema line")
    (line,) = [line for line in worker.log().splitlines() if "toolbox migrate" in line]
    name = make_url(empty_database_url).database
    assert f"the database {name} at " in line and " has no schema yet, not " in line, line
    assert "ERROR" in line or '"error"' in line.lower(), line


def test_a_worker_on_a_migrated_database_says_nothing_of_it(start_worker: StartWorker) -> None:
    worker = start_worker(queues="maintenance", concurrency=1)
    time.sleep(1)  # the check runs as the worker reports ready
    assert "toolbox migrate" not in worker.log(), worker.log()[-2000:]
    assert "alembic" not in worker.log(), "alembic's INFO lines (setup plugin ...) are no news"
