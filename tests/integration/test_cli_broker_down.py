"""Submitting from the command line while Redis is down: saved, said, and waited for.

The submit commits the row ``pending`` and the relay sends it once the broker
is back; the command says so at once on stderr (stdout stays the result, valid
JSON with ``--json``) and ``--wait`` goes on waiting.  Here the command's own
``TOOLBOX_REDIS_URL`` points at a closed port while the workers use the test
Redis: to the task, that is a broker that comes back.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest

from tests.integration.test_cli import TOOLBOX, toolbox
from tests.workers import StartWorker, wait_for
from workers import client

DOWN = "redis://:sekret-pw@127.0.0.1:1/0"
UNREACHABLE = "cannot connect to Redis at 127.0.0.1:1 (connection refused); check TOOLBOX_REDIS_URL"
WORKFLOW = ("workflow", "generate", "--subject", "science", "--grade", "6", "--topic", "volcanoes")


@pytest.fixture
def down_env(toolbox_env: dict[str, str]) -> dict[str, str]:
    return {**toolbox_env, "TOOLBOX_REDIS_URL": DOWN}


def warning_line(stderr: str, noun: str, found: str, *, waiting: str = "") -> str:
    """The one warning: what failed, which variable, that the task is saved, who sends it."""
    lines = stderr.strip().splitlines()
    assert lines[0] == (
        f"warning: {UNREACHABLE}. {noun} {found} is saved (pending); the relay (beat, as in "
        f"toolbox up) will dispatch it once the broker is back{waiting}"
    ), stderr
    assert "sekret-pw" not in stderr and "Traceback" not in stderr
    return lines[0]


def test_submit_without_wait_prints_the_id_and_says_the_task_is_saved(
    down_env: dict[str, str],
) -> None:
    plain = toolbox("task", "submit", "echo", "--input", '{"message": "later"}', env=down_env)
    assert plain.returncode == 0, plain.stderr
    task_id = plain.stdout.strip()
    warning_line(plain.stderr, "Task", task_id)
    assert len(plain.stderr.strip().splitlines()) == 1, plain.stderr  # no log line besides
    assert client.get_task(uuid.UUID(task_id)).status == "pending"

    as_json = toolbox("task", "submit", "echo", "--json", env=down_env)
    assert as_json.returncode == 0, as_json.stderr
    view = json.loads(as_json.stdout)
    assert view["status"] == "pending"
    warning_line(as_json.stderr, "Task", view["id"])


def test_wait_times_out_with_the_task_status(down_env: dict[str, str]) -> None:
    result = toolbox("task", "submit", "echo", "--wait", "--timeout", "2", "--json", env=down_env)
    assert result.returncode != 0
    assert result.stdout == ""
    warning, error = result.stderr.strip().splitlines()
    task_id = warning.split(" Task ", 1)[1].split()[0]
    warning_line(result.stderr, "Task", task_id, waiting="; waiting up to 2s")
    assert error == f"error: task {task_id} still pending after 2s (0% done)"


@pytest.mark.worker
@pytest.mark.slow
def test_wait_goes_on_and_ends_well_once_the_broker_is_back(
    down_env: dict[str, str], start_worker: StartWorker, tmp_path: Path
) -> None:
    out, err = tmp_path / "stdout", tmp_path / "stderr"
    with out.open("wb") as stdout, err.open("wb") as stderr:
        submit = subprocess.Popen(
            [TOOLBOX, "task", "submit", "echo", "--input", '{"message": "back"}', "--wait",
             "--json", "--timeout", "90"],
            env={**os.environ, **down_env}, stdout=stdout, stderr=stderr,
        )  # fmt: skip
    try:
        wait_for(lambda: b"warning:" in err.read_bytes() or submit.poll() is not None, 30)
        assert submit.poll() is None, err.read_text()  # told at once, and still waiting
        start_worker(beat=True)  # the relay in beat sends the pending task
        assert submit.wait(90) == 0, err.read_text()
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.wait()
    view = json.loads(out.read_text())
    assert view["status"] == "completed" and view["delivery_count"] == 1
    warning_line(err.read_text(), "Task", view["id"], waiting="; waiting up to 90s")
    assert len(err.read_text().strip().splitlines()) == 1


def test_workflow_generate_says_the_same(down_env: dict[str, str]) -> None:
    started = toolbox(*WORKFLOW, "--json", env=down_env)
    assert started.returncode == 0, started.stderr
    workflow_id = json.loads(started.stdout)["workflow_id"]
    warning_line(started.stderr, "Workflow", workflow_id)
    assert client.get_task(uuid.UUID(workflow_id)).status == "pending"

    for extra in ((), ("--json",)):
        waited = toolbox(*WORKFLOW, "--wait", "--timeout", "2", *extra, env=down_env)
        assert waited.returncode != 0
        warning, error = waited.stderr.strip().splitlines()
        found = warning.split(" Workflow ", 1)[1].split()[0]
        warning_line(waited.stderr, "Workflow", found, waiting="; waiting up to 2s")
        assert error == f"error: workflow {found} still pending (not started) after 2s"
        if extra:
            assert waited.stdout == ""
