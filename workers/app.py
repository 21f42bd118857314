"""The Celery application: ``celery -A workers.app worker|beat|inspect|flower``.

Configuration is read from settings the first time Celery needs it, so
importing this module connects to nothing and reads no environment.
"""

from __future__ import annotations

from celery import Celery

from workers import signals
from workers.celeryconfig import build_config
from workers.settings import get_settings

TASK_MODULES = ["tasks.agent", "tasks.maintenance", "tasks.platform", "tasks.lms"]

app = Celery("toolbox", include=TASK_MODULES)
app.add_defaults(lambda: build_config(get_settings()))
signals.connect(app)
