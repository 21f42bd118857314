"""Flower as an operator sees it: a login, readable task arguments, no payloads."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.integration.ops_support import free_port, start_process, stop_process, wait_until
from tests.workers import StartWorker
from workers import client

TOOLBOX = str(Path(sys.executable).parent / "toolbox")
LOGIN = ("operator", "flower-test-pass-7")
PAYLOAD = "Ada Lovelace's private essay"


def get(url: str, auth: tuple[str, str] | None = LOGIN) -> httpx.Response | None:
    try:
        return httpx.get(url, auth=auth, timeout=5)
    except httpx.TransportError:
        return None


@pytest.mark.worker
def test_flower_shows_tasks_by_id_behind_a_login(
    start_worker: StartWorker, toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    worker = start_worker(queues="agents")
    port = free_port()
    env = {
        **os.environ, **toolbox_env, "TOOLBOX_FLOWER_PORT": str(port),
        "TOOLBOX_FLOWER_BASIC_AUTH": ":".join(LOGIN),
    }  # fmt: skip
    flower = start_process([TOOLBOX, "flower"], env, tmp_path / "flower.log")
    base = f"http://127.0.0.1:{port}"
    try:
        online = f'flower_worker_online{{worker="{worker.name}@{socket.gethostname()}"}} 1.0'

        def listening() -> bool:
            metrics = get(f"{base}/metrics", auth=None)  # open, like /healthcheck
            return metrics is not None and online in metrics.text

        wait_until(listening, 40, "Flower receiving the worker's events")
        task_id = client.submit("echo", {"message": PAYLOAD})
        assert client.wait(task_id, timeout=30).status == "completed"
        info = wait_until(lambda: succeeded(base, task_id), 20, "the task in Flower")
        listed = get(f"{base}/api/tasks")
        assert listed is not None and str(task_id) in listed.json()
        assert info["name"] == "toolbox.agent.run"
        assert info["args"] == f"task_id={task_id} agent=echo"
        assert info["kwargs"] == "{}"
        assert info["worker"].startswith(worker.name)
        assert PAYLOAD not in json.dumps(info) and PAYLOAD not in listed.text

        for url in (f"{base}/api/tasks", f"{base}/api/task/info/{task_id}", f"{base}/"):
            anonymous = get(url, auth=None)
            assert anonymous is not None and anonymous.status_code == 401, url
        wrong = get(f"{base}/api/tasks", auth=(LOGIN[0], "guess"))
        assert wrong is not None and wrong.status_code == 401

        # A retry is a new message (Celery's own): it shows the same ids, never the payload.
        retried = client.submit(
            "echo", {"message": PAYLOAD, "fail_phase": "action", "fail_attempts": 1}
        )
        assert client.wait(retried, timeout=60).retry_count == 1
        info = wait_until(lambda: succeeded(base, retried), 20, "the retried task in Flower")
        assert info["args"] == f"task_id={retried} agent=echo"
        assert info["kwargs"] == "{}"
    finally:
        stop_process(flower)
    log = (tmp_path / "flower.log").read_text(errors="replace")
    assert LOGIN[1] not in log, "the password never reaches Flower's output"


def succeeded(base: str, task_id: object) -> dict[str, Any] | None:
    """Flower's view of a task once it saw the task succeed, else None."""
    response = get(f"{base}/api/task/info/{task_id}")
    if response is None or response.status_code != 200:
        return None
    info: dict[str, Any] = response.json()
    return info if info.get("state") == "SUCCESS" else None


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"TOOLBOX_ENV": "test"},
         "error: TOOLBOX_FLOWER_BASIC_AUTH is required to start Flower outside development"),
        ({"TOOLBOX_ENV": "production", "TOOLBOX_SECRET_KEYS": Fernet.generate_key().decode()},
         "error: TOOLBOX_FLOWER_BASIC_AUTH is required in production"),
    ],
)  # fmt: skip
def test_flower_refuses_to_start_without_credentials(env: dict[str, str], message: str) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLBOX_", "FLOWER_"))}
    urls = {
        "TOOLBOX_DATABASE_URL": "postgresql://toolbox@127.0.0.1:1/toolbox",
        "TOOLBOX_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [TOOLBOX, "flower"], env={**base, **urls, **env}, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip() == message


def test_flower_refuses_to_start_when_redis_does_not_answer(tmp_path: Path) -> None:
    """Flower would retry forever behind an empty dashboard; PostgreSQL it does not need."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLBOX_", "FLOWER_"))}
    env = {
        "TOOLBOX_ENV": "test",
        "TOOLBOX_DATA_DIR": str(tmp_path / "data"),  # not ./.toolbox of the checkout
        "TOOLBOX_FLOWER_BASIC_AUTH": ":".join(LOGIN),
        "TOOLBOX_DATABASE_URL": "postgresql://toolbox@127.0.0.1:1/toolbox",
        "TOOLBOX_REDIS_URL": "redis://127.0.0.1:1/0",
    }
    result = subprocess.run(
        [TOOLBOX, "flower"],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().startswith("error: cannot connect to Redis at 127.0.0.1:1")
    assert "TOOLBOX_REDIS_URL" in result.stderr and LOGIN[1] not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["flower"], ["up", "--processes", "agents,flower"]])
def test_flower_refuses_a_port_in_use_before_anything_starts(
    command: list[str], toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    """A second ``toolbox up`` (or another program on the port) used to start everything,
    then lose Flower to a tornado traceback and stop the stack; now one line, nothing started."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLBOX_", "FLOWER_"))}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {
            **toolbox_env,  # servers that answer: the port is the only problem
            "TOOLBOX_FLOWER_BASIC_AUTH": ":".join(LOGIN),
            "TOOLBOX_FLOWER_PORT": str(port),
        }
        result = subprocess.run(
            [TOOLBOX, *command], env={**base, **env}, capture_output=True, text=True,
            timeout=120, cwd=tmp_path,
        )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        f"error: Flower cannot listen on 0.0.0.0:{port}: the port is in use by another process"
        " (a toolbox up or toolbox flower already running?); stop it, or set TOOLBOX_FLOWER_PORT"
    )
    assert result.stdout == "" and LOGIN[1] not in result.stderr
