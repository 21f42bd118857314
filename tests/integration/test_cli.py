"""The ``toolbox`` command as a user runs it (a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.workers import StartWorker
from workers.settings import setting_variables
from workers.variables import unknown_variables

TOOLBOX = str(Path(sys.executable).parent / "toolbox")


def toolbox(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLBOX, *args], env={**os.environ, **(env or {})}, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_config_masks_secrets() -> None:
    key = Fernet.generate_key().decode()
    result = toolbox(
        "config", "--json",
        env={"TOOLBOX_SECRET_KEYS": key, "TOOLBOX_DATABASE_URL": "postgresql://u:pw9@h/d"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    shown = json.loads(result.stdout)
    assert shown["secret_keys"] == ["***"]
    assert "pw9" not in result.stdout and key not in result.stdout


def test_config_names_each_setting_by_the_variable_that_sets_it() -> None:
    """It listed ``TOOLBOX_RETENTION`` and ``TOOLBOX_SESSIONS`` (a dict each): not the
    variables the README documents, ``TOOLBOX_RETENTION_<NAME>``."""
    result = toolbox("config", env={"TOOLBOX_RETENTION_USAGE_DAYS": "3", "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr
    rows = dict(
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.stdout.splitlines() if line.startswith("│ TOOLBOX_")
    )  # fmt: skip
    assert rows["TOOLBOX_RETENTION_USAGE_DAYS"] == "3.0"
    assert rows["TOOLBOX_SESSIONS_GAME_IDLE_SECONDS"] == "1800"
    assert unknown_variables(dict.fromkeys(rows, "x"), setting_variables(), "TOOLBOX_") == ""


def test_a_bad_secret_key_stops_commands_before_they_touch_anything() -> None:
    """Not only the first LMS sync: that recorded the shell's mistake as the integration's."""
    result = toolbox("lms", "list", env={"TOOLBOX_SECRET_KEYS": "notakey"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith(
        "error: TOOLBOX_SECRET_KEYS: key #1 of 1 is not a valid Fernet key"
    )
    assert "notakey" not in result.stderr and "Traceback" not in result.stderr


def test_bad_setting_is_one_line_naming_the_variable() -> None:
    result = toolbox("config", env={"TOOLBOX_REDIS_URL": "http://nope"})
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: TOOLBOX_REDIS_URL: must be a redis://")
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_production_refuses_to_start_without_secrets() -> None:
    urls = {"TOOLBOX_DATABASE_URL": "postgresql://u@127.0.0.1:1/d",
            "TOOLBOX_REDIS_URL": "redis://127.0.0.1:1/0"}  # fmt: skip
    result = toolbox("migrate", env={"TOOLBOX_ENV": "production", **urls})
    assert (result.returncode, result.stderr) == (
        2,
        "error: TOOLBOX_SECRET_KEYS is required in production\n",
    )
    without_urls = toolbox("migrate", env={"TOOLBOX_ENV": "production"})
    assert without_urls.returncode == 2
    assert "TOOLBOX_DATABASE_URL and TOOLBOX_REDIS_URL are required in production" in (
        without_urls.stderr
    )


SERVICE = """
from workers import client
from workers.secrets import secret_box
task = client.submit("echo", {"message": "from a service"})
print(client.get_task(task).status)
try:
    secret_box()
except Exception as exc:
    print(type(exc).__name__, exc)
"""


def test_a_production_service_submits_with_the_two_urls_alone(
    toolbox_env: dict[str, str],
) -> None:
    """It used to need TOOLBOX_SECRET_KEYS (the key to every stored LMS token) and the
    Flower login, which only the worker stack uses; it is refused LMS secrets instead."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBOX_")}
    env["TOOLBOX_ENV"] = "production"
    for name in ("TOOLBOX_DATABASE_URL", "TOOLBOX_REDIS_URL"):
        env[name] = toolbox_env[name]
    done = subprocess.run(
        [sys.executable, "-c", SERVICE], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "queued",
        "ConfigurationError TOOLBOX_SECRET_KEYS is required in production to read or store"
        " LMS secrets",
    ]


@pytest.mark.worker
def test_task_commands_end_to_end(start_worker: StartWorker, toolbox_env: dict[str, str]) -> None:
    start_worker()
    submitted = toolbox(
        "task",
        "submit",
        "echo",
        "--input",
        '{"message": "cli"}',
        "--wait",
        "--json",
        env=toolbox_env,
    )
    assert submitted.returncode == 0, submitted.stderr
    view = json.loads(submitted.stdout)
    assert view["status"] == "completed" and len(view["states"]) == 5
    shown = toolbox("task", "show", view["id"], env=toolbox_env)
    assert shown.returncode == 0 and "SPARC states" in shown.stdout and "completed" in shown.stdout
    listed = toolbox("task", "list", "--agent", "echo", "--json", env=toolbox_env)
    assert [t["id"] for t in json.loads(listed.stdout)] == [view["id"]]
    cancelled = toolbox("task", "cancel", view["id"], env=toolbox_env)
    assert cancelled.returncode == 1, cancelled.stderr  # finished: nothing to cancel
    assert "completed (had already finished; nothing was cancelled)" in cancelled.stdout


def test_task_submit_rejects_bad_input(toolbox_env: dict[str, str]) -> None:
    bad_json = toolbox("task", "submit", "echo", "--input", "{nope", env=toolbox_env)
    assert bad_json.returncode == 2 and "submit: --input: not valid JSON" in bad_json.stderr
    bad_field = toolbox(
        "task", "submit", "echo", "--input", '{"phase_seconds": "slow"}', env=toolbox_env
    )
    assert bad_field.returncode == 2 and "phase_seconds" in bad_field.stderr
    unknown = toolbox("task", "submit", "painter", env=toolbox_env)
    assert unknown.returncode == 2 and "unknown agent 'painter'" in unknown.stderr


def test_db_check_reports_match_and_drift(toolbox_env: dict[str, str], database_url: str) -> None:
    ok = toolbox("db", "check", env=toolbox_env)
    assert ok.returncode == 0 and "schema matches the models" in ok.stdout
    from sqlalchemy import create_engine, pool, text

    engine = create_engine(database_url, poolclass=pool.NullPool)
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE users DROP COLUMN bio"))
    engine.dispose()
    drift = toolbox("db", "check", env=toolbox_env)
    assert drift.returncode == 1 and "bio" in drift.stdout


@pytest.mark.worker
def test_workflow_commands_end_to_end(
    start_worker: StartWorker, toolbox_env: dict[str, str]
) -> None:
    start_worker()
    generated = toolbox(
        "workflow", "generate", "--subject", "science", "--grade", "6", "--topic", "volcanoes",
        "--objective", "Explain why volcanoes erupt", "--wait", "--json", env=toolbox_env,
    )  # fmt: skip
    assert generated.returncode == 0, generated.stderr
    view = json.loads(generated.stdout)
    assert view["status"] == "completed"
    assert {"content_id", "quiz_id", "terrain_id", "script_ids"} <= set(view["artifacts"])
    shown = toolbox("workflow", "show", view["id"], env={**toolbox_env, "COLUMNS": "300"})
    assert shown.returncode == 0, shown.stderr
    for word in ("supervisor", "content", "quiz", "terrain", "script", "review", "content_id"):
        assert word in shown.stdout
    scripts = ", ".join(view["artifacts"]["script_ids"])  # a list, not Python's ['...', '...']
    assert f"script_ids: {scripts}\n" in shown.stdout, shown.stdout
    followed = toolbox(
        "workflow", "generate", "--subject", "math", "--grade", "3", "--topic", "fractions",
        "--wait", env=toolbox_env,
    )  # fmt: skip
    assert followed.returncode == 0, followed.stderr
    assert "completed" in followed.stdout and "artifacts" in followed.stdout
    assert followed.stdout.startswith("workflow "), "the progress bar's line endings are on stderr"


def test_workflow_generate_refuses_a_bad_request(toolbox_env: dict[str, str]) -> None:
    refused = toolbox(
        "workflow", "generate", "--subject", "science", "--grade", "13", "--topic", "volcanoes",
        env=toolbox_env,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "--grade: " in refused.stderr and "Traceback" not in refused.stderr
