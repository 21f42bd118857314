"""The standard ``celery`` commands next to the embedded servers, with no URL set."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers import wait_for
from workers.embedded import resolve_servers
from workers.settings import Settings

pytestmark = [pytest.mark.worker, pytest.mark.slow]

CELERY = [sys.executable, "-m", "celery", "-A", "workers.app"]


def test_celery_worker_and_inspect_join_the_embedded_servers(
    tmp_path: Path, server_dir: Path
) -> None:
    data_dir = server_dir / "data"
    servers = resolve_servers(Settings(data_dir=data_dir), export=False)  # as `toolbox up` would
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOOLBOX_")}
    env["TOOLBOX_DATA_DIR"] = str(data_dir)
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [*CELERY, "worker", "-Q", "maintenance", "-c", "1", "-n", "laptop@%h", "--without-mingle",
         "--without-gossip", "-l", "WARNING"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        replies: list[str] = []

        def pong() -> bool:
            ping = subprocess.run(
                [*CELERY, "inspect", "ping"], env=env, capture_output=True, text=True, timeout=60
            )
            replies.append(ping.stdout + ping.stderr)
            return ping.returncode == 0 and "laptop@" in ping.stdout and "pong" in ping.stdout

        wait_for(pong, timeout=60)
        assert "ConfigurationError" not in "".join(replies)
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(30)
        servers.close()
