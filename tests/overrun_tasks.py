"""Tasks for worker tests only (``start_worker(include="tests.overrun_tasks")``)."""

from __future__ import annotations

import gc
import os
import sys
import time

from celery.exceptions import SoftTimeLimitExceeded

from workers.app import app
from workers.redis import get_redis


@app.task(name="toolbox.tests.overrun", soft_time_limit=0.5, time_limit=1.5, ignore_result=True)
def overrun() -> None:
    """Swallows its soft time limit, as the passback drain once did: the hard limit kills it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            continue


@app.task(name="toolbox.tests.heap", ignore_result=True)
def heap(key: str) -> None:
    """Reports the pool child's pid, how many objects it inherited frozen, and whether it
    inherited the model-calling modules, under ``key``."""
    inherited = int("langchain.chat_models" in sys.modules and "agents.prompts" in sys.modules)
    get_redis().rpush(key, f"{os.getpid()} {gc.get_freeze_count()} {inherited}")
