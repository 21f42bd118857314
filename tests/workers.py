"""Real ``celery worker`` processes for integration tests (pytest plugin).

pytest-celery's own ``celery_worker`` needs Docker; crash tests need real
processes anyway, so these are plain subprocesses on the test servers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    log_path: Path
    name: str
    children_seen: set[int] = field(default_factory=set)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def pool_children(self) -> list[psutil.Process]:
        return psutil.Process(self.process.pid).children()

    def stop(self, timeout: float = 15.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and pool children)."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)


StartWorker = Callable[..., WorkerProcess]


def wait_for(
    predicate: Callable[[], object], timeout: float = 20.0, interval: float = 0.05
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


@pytest.fixture
def start_worker(toolbox_env: dict[str, str], tmp_path: Path) -> Iterator[StartWorker]:
    started: list[WorkerProcess] = []

    def start(
        queues: str = "agents,lms,passback,maintenance",
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
        beat: bool = False,
        include: str | None = None,
    ) -> WorkerProcess:
        name = f"test-{uuid.uuid4().hex[:6]}"
        log_path = tmp_path / f"{name}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers.app",
            "worker",
            "-Q",
            queues,
            "-c",
            str(concurrency),
            "-n",
            f"{name}@%h",
            "-P",
            "prefork",
            "--without-gossip",
            "--without-mingle",
            "-l",
            "INFO",
            "--prefetch-multiplier",
            "1",
        ]
        if beat:
            command += ["-B", "-s", str(tmp_path / f"{name}-beat")]
        if include:  # test-only task modules
            command += ["--include", include]
        env = {**os.environ, **toolbox_env, **(extra_env or {})}
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        worker = WorkerProcess(process, log_path, name)
        started.append(worker)
        try:
            wait_for(lambda: "ready." in worker.log() or process.poll() is not None, 60)
        except AssertionError:
            worker.kill()
            raise AssertionError(f"worker did not start:\n{worker.log()[-3000:]}") from None
        if process.poll() is not None:
            raise AssertionError(f"worker exited:\n{worker.log()[-3000:]}")
        return worker

    yield start
    for worker in started:  # the test is over: no warm shutdown to wait for (about 2.4 s each)
        worker.kill()
