"""Process lifecycle hooks: fresh engine per pool child, logging setup."""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.signals import setup_logging, worker_process_init

from workers.db import reset_engine
from workers.logs import configure_logging
from workers.settings import get_settings


def _child_started(**_: Any) -> None:
    reset_engine()


def _setup_logging(**_: Any) -> None:
    settings = get_settings()
    configure_logging(settings.log_level, json_output=settings.log_json)


def connect(app: Celery) -> None:
    del app  # signals are global in Celery; the argument documents who calls this
    worker_process_init.connect(_child_started, weak=False)
    setup_logging.connect(_setup_logging, weak=False)
