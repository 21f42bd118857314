"""A task for worker tests only (``start_worker(include="tests.overrun_tasks")``)."""

from __future__ import annotations

import time

from celery.exceptions import SoftTimeLimitExceeded

from workers.app import app


@app.task(name="toolbox.tests.overrun", soft_time_limit=0.5, time_limit=1.5, ignore_result=True)
def overrun() -> None:
    """Swallows its soft time limit, as the passback drain once did: the hard limit kills it."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            time.sleep(0.05)
        except SoftTimeLimitExceeded:
            continue
