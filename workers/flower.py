"""Flower with authentication from settings, persistent state, and no secrets on argv.

Credentials travel in ``FLOWER_BASIC_AUTH`` (environment), never on the command
line where ``ps`` would show them.  Outside development Flower refuses to
start without credentials; in development without them it listens on
127.0.0.1 only.
"""

from __future__ import annotations

import errno
import socket
from dataclasses import dataclass

from models.errors import ConfigurationError
from workers.ports import PORT_IN_USE, cannot_listen
from workers.procs import process_env
from workers.settings import ENV_PREFIX, Settings, ensure_data_dir


@dataclass(frozen=True)
class FlowerLaunch:
    argv: list[str]
    env: dict[str, str]


def check_login(settings: Settings) -> None:
    """``ConfigurationError`` when Flower would refuse to start: no login outside development."""
    if not settings.flower_basic_auth and settings.env != "development":
        raise ConfigurationError(
            f"{ENV_PREFIX}FLOWER_BASIC_AUTH is required to start Flower outside development"
        )


def flower_address(settings: Settings, address: str | None = None) -> str:
    """Where Flower listens: every address with a login, 127.0.0.1 only without one."""
    if settings.flower_basic_auth:
        return address or "0.0.0.0"
    return "127.0.0.1"  # development without a login


def check_port(settings: Settings, address: str | None = None) -> None:
    """``ConfigurationError`` when Flower's port is taken, before anything starts.

    Flower would otherwise die with a traceback after ``toolbox up`` had
    started everything else (a second ``toolbox up`` in the same folder, or
    another program on the port).  The probe binds as Tornado does
    (``SO_REUSEADDR``), so a port left in TIME_WAIT by a stopped Flower is free.
    """
    bind, port = flower_address(settings, address), settings.flower_port
    with socket.socket(socket.AF_INET6 if ":" in bind else socket.AF_INET) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((bind, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                return  # Flower will say what else is wrong
            raise ConfigurationError(
                f"Flower {cannot_listen(bind, port, PORT_IN_USE)}"
                " (a toolbox up or toolbox flower already running?); stop it, or set"
                f" {ENV_PREFIX}FLOWER_PORT"
            ) from None


def flower_launch(settings: Settings, *, address: str | None = None) -> FlowerLaunch:
    check_login(settings)
    env = process_env()
    for key in [k for k in env if k.startswith("FLOWER_")]:
        del env[key]
    bind = flower_address(settings, address)
    if settings.flower_basic_auth:
        pairs = (pair.get_secret_value() for pair in settings.flower_basic_auth)
        env["FLOWER_BASIC_AUTH"] = ",".join(pairs)
    else:  # development
        env["FLOWER_UNAUTHENTICATED_API"] = "true"
    ensure_data_dir(settings.data_dir)
    argv = [
        "celery", "-A", "workers.app", "flower",
        f"--port={settings.flower_port}",
        f"--address={bind}",
        "--persistent=True",
        f"--db={settings.data_dir / 'flower.db'}",
        "--state_save_interval=60000",
        "--max_tasks=50000",
        # Flower would otherwise switch events on in every worker, whatever the setting says
        f"--enable_events={settings.task_events}",
    ]  # fmt: skip
    return FlowerLaunch(argv, env)
