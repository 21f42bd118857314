"""Children end with the ``toolbox`` process that started them, even when it is SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.embedded_support import TOOLBOX
from tests.integration.ops_support import free_port, start_process, stop_process, wait_until
from tests.workers import wait_for

pytestmark = [pytest.mark.skipif(sys.platform != "linux", reason="PR_SET_PDEATHSIG is Linux's")]

LOGIN = "operator:lifeline-pass-5"
ORPHANED_BEFORE_ARMING = """
import os, subprocess, sys
from workers.lifelines import die_with_parent
arm = die_with_parent()  # armed for this process...
if os.fork() == 0:  # ...but used by its child, as if this process had died before the prctl
    child = subprocess.Popen(["sleep", "30"], preexec_fn=arm)
    os._exit(-child.wait())
_, status = os.waitpid(-1, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def serving(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def assert_all_gone(processes: list[psutil.Process], within: float) -> None:
    try:
        wait_for(lambda: all(gone(p) for p in processes), within, 0.1)
    except AssertionError:
        left = [" ".join(p.cmdline()) for p in processes if not gone(p)]
        for process in processes:  # started by this test: do not leave them behind
            if not gone(process):
                process.kill()
        raise AssertionError(f"running {within}s after the parent's SIGKILL: {left}") from None


def test_alive_tells_a_zombie_and_a_reused_pid_from_the_live_process() -> None:
    from workers.lifelines import alive, start_mark

    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        mark = start_mark(sleeper.pid)
        assert mark is not None
        assert alive(sleeper.pid) and alive(sleeper.pid, mark)
        own = start_mark(os.getpid())
        assert own is not None and own != mark
        assert not alive(sleeper.pid, own), "the pid names another process than the one recorded"
        sleeper.kill()
        wait_for(lambda: gone(psutil.Process(sleeper.pid)), 10)
        assert start_mark(sleeper.pid) is None
        assert not alive(sleeper.pid), "a zombie (killed, not yet reaped) is not alive"
    finally:
        sleeper.kill()
        sleeper.wait(10)
    assert not alive(sleeper.pid)


def test_a_child_started_after_its_parent_died_stops_at_once() -> None:
    result = subprocess.run(
        [sys.executable, "-c", ORPHANED_BEFORE_ARMING], capture_output=True, text=True, timeout=20
    )
    assert result.returncode == signal.SIGTERM, result.stderr  # the child died of SIGTERM


def flower_env(toolbox_env: dict[str, str]) -> tuple[int, dict[str, str]]:
    """A free port for Flower and the environment that serves it there, with a login."""
    port = free_port()
    env = {
        **os.environ, **toolbox_env, "TOOLBOX_FLOWER_PORT": str(port),
        "TOOLBOX_FLOWER_BASIC_AUTH": LOGIN,
    }  # fmt: skip
    return port, env


def test_flower_ends_with_a_killed_toolbox_flower(
    toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    port, env = flower_env(toolbox_env)
    toolbox_flower = start_process([TOOLBOX, "flower"], env, tmp_path / "flower.log")
    try:
        wait_until(lambda: serving(f"http://127.0.0.1:{port}/healthcheck"), 60, "Flower up")
        [flower] = psutil.Process(toolbox_flower.pid).children()
        assert "flower" in flower.cmdline()
        toolbox_flower.kill()  # no cleanup, no signal forwarded
        toolbox_flower.wait(10)
        assert_all_gone([flower], within=10)
    finally:
        stop_process(toolbox_flower)


@pytest.mark.worker
@pytest.mark.slow
def test_the_stack_ends_with_a_killed_toolbox_up(
    toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    port, env = flower_env(toolbox_env)
    # with server URLs nothing creates the folder before beat opens its schedule there
    Path(toolbox_env["TOOLBOX_DATA_DIR"]).mkdir(parents=True, exist_ok=True)
    log = tmp_path / "up.log"
    up = start_process([TOOLBOX, "up", "--processes", "agents,maintenance,beat,flower"], env, log)
    try:
        wait_until(lambda: log.read_bytes().count(b" ready.") >= 2, 90, "both workers ready")
        wait_until(lambda: serving(f"http://127.0.0.1:{port}/healthcheck"), 60, "Flower up")
        stack = psutil.Process(up.pid).children(recursive=True)
        commands = " ".join(" ".join(p.cmdline()) for p in stack)
        for part in ("worker -Q agents", "worker -Q maintenance", "beat", "toolbox flower"):
            assert part in commands
        up.kill()  # honcho cannot stop anything now
        up.wait(10)
        assert_all_gone(stack, within=15)
    finally:
        stop_process(up)
