"""``toolbox status`` and ``toolbox metrics`` as an operator runs them (real subprocesses)."""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, text

from tests.integration.ops_support import (
    free_port,
    insert,
    start_process,
    stop_process,
    user,
    wait_until,
)
from tests.integration.test_cli_broker_refused import refusing
from workers.jobs.queues import PRIORITY_SEPARATOR
from workers.redis import client_url

TOOLBOX = str(Path(sys.executable).parent / "toolbox")


@pytest.fixture
def stack(engine: Engine, redis_url: str) -> dict[str, Any]:
    """A stack with a little of everything: queued messages, tasks, errors, LMS, health."""
    broker = redis.Redis.from_url(client_url(redis_url))
    broker.rpush("agents", b"m1", b"m2")
    broker.rpush(f"agents{PRIORITY_SEPARATOR}3", b"m3")
    broker.hset("unacked", "tag", b"m4")
    broker.close()
    with engine.begin() as connection:
        echo = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()

        def task(status: str, **extra: Any) -> None:
            insert(
                connection, "agent_tasks", json=("input_data",), agent_id=echo, task_type="echo",
                task_name="echo task", input_data={"message": "Grace's private notes"},
                status=status, **extra,
            )  # fmt: skip

        task("running", started_at_ago=30)
        task("queued")
        task("completed", started_at_ago=20, completed_at_ago=10, duration_seconds=10)
        task(
            "completed", started_at_ago=40, completed_at_ago=10, duration_seconds=30, retry_count=2
        )
        task("failed", completed_at_ago=100, retry_count=3, error_message="budget spent")
        insert(
            connection, "error_logs", error_type="EchoFailure", service_name="toolbox.agent.echo",
            error_message="task 42 failed after 3 tries", error_hash="a" * 64, severity="high",
        )  # fmt: skip
        integration = insert(
            connection, "lms_integrations", platform_name="canvas",
            institution_name="Lincoln Elementary", base_url="https://canvas.school.test",
            auth_type="oauth2", last_sync_status="failed", last_sync_at_ago=7200,
            sync_error_message="canvas answered 503", not_before_ago=-3600,  # an hour ahead
        )  # fmt: skip
        not_before = connection.execute(
            text("SELECT not_before FROM lms_integrations WHERE id = :id"), {"id": integration}
        ).scalar_one()
        course = insert(
            connection, "lms_courses", lms_integration_id=integration, external_course_id="c1",
            title="Science 5",
        )  # fmt: skip
        assignment = insert(
            connection, "lms_assignments", lms_course_id=course, external_assignment_id="a1",
            title="Volcano quiz",
        )  # fmt: skip
        student = user(connection)
        for status in ("pending", "pending", "failed", "success"):
            insert(
                connection, "lms_grade_passbacks", lms_assignment_id=assignment,
                user_id=student, external_user_id=f"s-{status}", status=status,
            )  # fmt: skip
        insert(
            connection, "system_health_checks", service_name="toolbox-worker", status="degraded",
            overall_score=90, warnings=["no worker consumes the lms queue"], instance_id="m@box",
        )  # fmt: skip
        insert(
            connection, "periodic_job_runs", json=("detail",), job_name="retention",
            slot_start_ago=60, status="success", detail={"usage_deleted": 4},
        )  # fmt: skip
    return {"integration": integration, "not_before": not_before}


def toolbox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLBOX, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )


def test_status_json_shows_the_durable_picture(
    stack: dict[str, Any], toolbox_env: dict[str, str]
) -> None:
    result = toolbox(toolbox_env, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    queues = {queue["name"]: queue for queue in status["queues"]}
    assert queues["agents"]["depth"] == 3 and queues["agents"]["by_priority"] == {"6": 1, "9": 2}
    assert status["unacked"] == 1 and status["broker_error"] is None
    echo = next(agent for agent in status["agents"] if agent["agent"] == "echo")
    assert (echo["running"], echo["waiting"], echo["completed_last_hour"]) == (1, 1, 2)
    assert echo["failed_last_hour"] == 1 and echo["slots"] == 16
    [error] = status["errors_last_hour"]
    assert error["message"] == "task <n> failed after <n> tries" and error["severity"] == "high"
    [lms] = status["lms"]
    assert (lms["institution"], lms["last_sync_status"]) == ("Lincoln Elementary", "failed")
    assert lms["error"] == "canvas answered 503" and lms["id"] == str(stack["integration"])
    assert dt.datetime.fromisoformat(lms["not_before"]) == stack["not_before"]
    assert {k: status["passbacks"][k] for k in ("pending", "sending", "failed")} == {
        "pending": 2, "sending": 0, "failed": 1,
    }  # fmt: skip
    assert status["health"]["status"] == "degraded"
    assert status["health"]["warnings"] == ["no worker consumes the lms queue"]
    assert status["jobs"][0]["job"] == "retention" and status["jobs"][0]["status"] == "success"
    assert "Grace" not in result.stdout, "no payload reaches the status output"


def test_status_tables(stack: dict[str, Any], toolbox_env: dict[str, str]) -> None:
    result = toolbox({**toolbox_env, "COLUMNS": "200"}, "status")
    assert result.returncode == 0, result.stderr
    for title in ("Queues (Redis)", "Agent tasks (PostgreSQL)", "Errors seen in the last hour",
                  "LMS integrations", "Health and periodic jobs"):  # fmt: skip
        assert title in result.stdout
    assert "p9: 2, p6: 1" in result.stdout
    assert "Lincoln Elementary" in result.stdout and "canvas answered 503" in result.stdout
    until = stack["not_before"].astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    assert f"not before {until} (Retry-After)" in result.stdout
    assert "grade passbacks: 2 pending, 0 sending, 1 failed" in result.stdout
    assert "degraded (90)" in result.stdout


def test_status_tables_at_80_columns_cut_no_name_count_or_time(
    stack: dict[str, Any], toolbox_env: dict[str, str]
) -> None:
    """rich shrank every column alike: ``supervis…``, ``complet…``, ``2026-11-…``."""
    result = toolbox({**toolbox_env, "COLUMNS": "80"}, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(map(len, lines)) <= 80
    assert "…" not in result.stdout
    assert any("supervisor" in line for line in lines)
    headers = ("running/slots", "waiting", "retry", "done 1h", "failed 1h", "checked")
    assert any(all(header in line for header in headers) for line in lines)
    assert any("degraded (90)" in line for line in lines)
    assert any("Lincoln" in line for line in lines)


def test_status_reports_an_unreachable_broker(
    stack: dict[str, Any], toolbox_env: dict[str, str]
) -> None:
    result = toolbox(
        {**toolbox_env, "TOOLBOX_REDIS_URL": "redis://127.0.0.1:1/0"}, "status", "--json"
    )
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    assert status["broker_error"] == "redis unreachable: ConnectionError"
    assert status["queues"] == [] and status["agents"]


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float] | None:
    try:
        response = httpx.get(url, timeout=5)
    except httpx.TransportError:
        return None
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_exporter_over_http(
    stack: dict[str, Any], toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    port = free_port()
    argv = [TOOLBOX, "metrics", "--port", str(port), "--address", "127.0.0.1"]
    process = start_process(argv, {**os.environ, **toolbox_env}, tmp_path / "metrics.log")
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        samples = wait_until(lambda: scrape(url), 30, "the exporter answers")
    finally:
        stop_process(process)

    def value(name: str, **labels: str) -> float:
        return samples[(name, tuple(sorted(labels.items())))]

    assert value("toolbox_up", component="redis") == 1
    assert value("toolbox_up", component="postgresql") == 1
    assert value("toolbox_queue_depth", queue="agents") == 3
    assert value("toolbox_queue_depth", queue="lms") == 0
    assert value("toolbox_queue_priority_depth", queue="agents", priority="6") == 1
    assert value("toolbox_queue_unacked") == 1
    assert value("toolbox_agent_tasks", agent="echo", status="running") == 1
    assert value("toolbox_agent_tasks", agent="echo", status="queued") == 1
    assert value("toolbox_agent_tasks_finished_last_hour", agent="echo", status="completed") == 2
    assert value("toolbox_agent_tasks_finished_last_hour", agent="echo", status="failed") == 1
    assert value("toolbox_agent_task_retries_last_hour", agent="echo") == 5
    assert value("toolbox_agent_task_duration_seconds", agent="echo", quantile="0.5") == 20
    assert value("toolbox_agent_task_duration_seconds", agent="echo", quantile="1") == 30
    assert value("toolbox_error_groups_open", severity="high") == 1
    assert value("toolbox_lms_passbacks", status="pending") == 2
    assert value("toolbox_health_status", status="degraded") == 1
    assert value("toolbox_health_status", status="healthy") == 0
    assert 0 <= value("toolbox_health_check_age_seconds") < 60
    assert not any("Grace" in label for _, labels in samples for _, label in labels)


def exporter_log(env: dict[str, str], log_path: Path) -> list[dict[str, Any]]:
    """The JSON records ``toolbox metrics`` logs while answering one scrape, Redis down."""
    port = free_port()
    argv = [TOOLBOX, "metrics", "--port", str(port), "--address", "127.0.0.1"]
    process = start_process(argv, {**os.environ, **env}, log_path)
    try:
        samples = wait_until(lambda: scrape(f"http://127.0.0.1:{port}/metrics"), 30, "an answer")
    finally:
        stop_process(process)
    assert samples[("toolbox_up", (("component", "redis"),))] == 0
    assert "warning: " not in log_path.read_text()
    return [json.loads(line) for line in log_path.read_text().splitlines() if line[:1] == "{"]


def test_the_metrics_exporter_logs_as_a_service(
    toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    """Timestamped JSON lines (TOOLBOX_LOG_JSON), as the workers log; not a command's warnings."""
    env = {**toolbox_env, "TOOLBOX_REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    records = exporter_log(env, tmp_path / "metrics.log")
    unreachable = [r for r in records if r["msg"] == "metrics: redis unreachable (ConnectionError)"]
    assert unreachable and unreachable[0]["level"] == "WARNING" and unreachable[0]["ts"]


def test_the_metrics_exporter_logs_a_refused_setting_as_one_to_fix(
    toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    """A Redis that answers but refuses the database number is no outage: the line says so."""
    url = refusing(toolbox_env["TOOLBOX_REDIS_URL"])
    records = exporter_log({**toolbox_env, "TOOLBOX_REDIS_URL": url}, tmp_path / "metrics.log")
    said = (
        f"metrics: Redis refuses TOOLBOX_REDIS_URL={url} (DB index is out of range);"
        " fix the setting"
    )
    assert [r["level"] for r in records if r["msg"] == said][:1] == ["WARNING"]
    assert not [r for r in records if "unreachable" in r["msg"]]


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1",
         "--port: cannot listen on 127.0.0.1:{port}: the port is in use by another process"),
        ("999.1.1.1", "--address: cannot listen on 999.1.1.1: no such address"),
    ],
)  # fmt: skip
def test_the_metrics_exporter_that_cannot_listen_says_so_in_one_line(
    toolbox_env: dict[str, str], address: str, message: str
) -> None:
    """A busy port or a bad address: one error line, not a traceback after "metrics on ..."."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = toolbox(toolbox_env, "metrics", "--port", str(port), "--address", address)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and "metrics on" not in result.stdout
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: toolbox metrics: " + message.format(port=port)]


def test_the_metrics_exporter_on_a_taken_port_starts_no_embedded_server(
    tmp_path: Path,
) -> None:
    """It started the embedded servers first: five INFO lines, then the error."""
    from tests.integration.embedded_support import embedded_env

    data_dir = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [TOOLBOX, "metrics", "--port", str(port)], env=embedded_env(data_dir),
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr == (
        f"error: toolbox metrics: --port: cannot listen on 127.0.0.1:{port}: the port is in use"
        " by another process\n"
    )
    assert not data_dir.exists(), "no embedded server started"


def test_duration_metric_keeps_sub_second_run_times(engine: Engine) -> None:
    """Most agent tasks take well under a second; the whole-second column made them all 1."""
    from workers.metrics import database_metrics

    with engine.begin() as connection:
        echo = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()
        for run_time in (0.02, 0.05, 0.25):
            insert(
                connection, "agent_tasks", json=("input_data",), agent_id=echo,
                task_type="echo", task_name="echo task", input_data={}, status="completed",
                started_at_ago=run_time + 1,
                completed_at_ago=1, duration_seconds=1,
            )  # fmt: skip
        metrics = database_metrics(connection)
    samples = {
        sample.labels["quantile"]: sample.value
        for family in metrics
        if family.name == "toolbox_agent_task_duration_seconds"
        for sample in family.samples
    }
    assert samples["0.5"] == pytest.approx(0.05, abs=1e-6)
    assert samples["1"] == pytest.approx(0.25, abs=1e-6)
