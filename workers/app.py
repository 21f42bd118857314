"""The Celery application: ``celery -A workers.app worker|beat|inspect|flower``.

Configuration is read from settings the first time Celery needs it, so
importing this module connects to nothing and reads no environment.  Outside
production, with no server URLs set, it joins (or starts) the embedded
servers of ``TOOLBOX_DATA_DIR`` like every ``toolbox`` command, so the
standard ``celery`` commands work next to ``toolbox up`` on a laptop.
"""

from __future__ import annotations

from typing import Any

from celery import Celery

from workers import kombu_fixes, signals
from workers.celeryconfig import build_config
from workers.settings import get_settings

TASK_MODULES = ["tasks.agent", "tasks.maintenance", "tasks.platform", "tasks.lms"]
_embedded: list[Any] = []
"""The embedded servers' handles, kept for the life of the process (dropping one may stop it)."""


def _config() -> dict[str, Any]:
    settings = get_settings()
    missing = settings.redis_url is None or settings.database_url is None
    if missing and settings.env != "production":
        from workers.embedded import resolve_servers

        _embedded.append(resolve_servers())  # exports the URLs for this process and its children
        settings = get_settings()
    return build_config(settings)


kombu_fixes.apply()
app = Celery("toolbox", include=TASK_MODULES)
app.add_defaults(_config)
signals.connect(app)
