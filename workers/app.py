"""The Celery application: ``celery -A workers.app worker|beat|inspect|flower``.

Configuration is read from settings the first time Celery needs it, so
importing this module connects to nothing and reads no environment.  Outside
production, with no server URLs set, it joins (or starts) the embedded
servers of ``TOOLBOX_DATA_DIR`` like every ``toolbox`` command, so the
standard ``celery`` commands work next to ``toolbox up`` on a laptop.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from celery import Celery

from models.errors import ConfigurationError
from workers import kombu_fixes, signals
from workers.celeryconfig import build_config
from workers.settings import ENV_PREFIX, Settings, get_settings, require_stack_secrets

CONFIGURATION_EXIT_STATUS = 2
"""The exit status of a ``celery`` command refused for its settings, as of a ``toolbox`` one."""
TASK_MODULES = ["tasks.agent", "tasks.maintenance", "tasks.platform", "tasks.lms"]
_embedded: list[Any] = []
"""The embedded servers' handles, kept for the life of the process (dropping one may stop it)."""


def _config() -> dict[str, Any]:
    command_line = _celery_command_line()  # a worker, beat or Flower of the stack, not a service
    try:
        settings = get_settings()
        missing = settings.redis_url is None or settings.database_url is None
        if missing and settings.env != "production":
            from workers.embedded import resolve_servers

            _embedded.append(resolve_servers())  # exports the URLs for this process and children
            settings = get_settings()
        if command_line:
            require_stack_secrets(settings)
            if "worker" in sys.argv[1:]:
                check_models(settings)
        return build_config(settings)
    except ConfigurationError as exc:
        if not command_line:
            raise  # a service's submit: its caller gets the error
        # Celery reads the configuration while it parses its options: left alone, a missing
        # or bad setting ended `celery worker|beat|inspect` in a traceback of about 70 lines
        # (a container crash-looping with it), where a toolbox command says one line.
        sys.stderr.write(f"error: {exc.message}\n")
        raise SystemExit(CONFIGURATION_EXIT_STATUS) from None


def check_models(settings: Settings) -> None:
    """A worker's chat models can be built: a known provider, its package installed.

    Refused at start in one line naming the variable, not at each task's
    first model call (a failed task per task, after its first phases ran).
    """
    from agents.providers import check_provider

    specs = {f"{ENV_PREFIX}DEFAULT_MODEL": settings.default_model}
    specs |= {f"{ENV_PREFIX}AGENT_MODELS ({kind})": s for kind, s in settings.agent_models.items()}
    for variable, spec in specs.items():
        try:
            check_provider(spec)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{variable}: {exc.message}") from None


def _celery_command_line() -> bool:
    """Whether this process is the ``celery`` command (``celery ...`` or ``python -m celery``)."""
    program = Path(getattr(sys, "argv", [""])[0] or "")
    return program.name == "celery" or program.parts[-2:] == ("celery", "__main__.py")


kombu_fixes.apply()
app = Celery("toolbox", include=TASK_MODULES)
app.add_defaults(_config)
signals.connect(app)
