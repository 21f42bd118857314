"""The baseline: a bare Celery app with the same broker and reliability options."""

from __future__ import annotations

import os

import redis
from celery import Celery

from workers.redis import client_url

broker = os.environ["TOOLBOX_REDIS_URL"]
app = Celery("raw", broker=broker)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_ignore_result=True,
    task_default_queue="raw",
    # the same switch as the agent workers' (TOOLBOX_TASK_EVENTS), so both pay alike
    worker_send_task_events=os.environ.get("TOOLBOX_TASK_EVENTS", "true") == "true",
    task_send_sent_event=os.environ.get("TOOLBOX_TASK_EVENTS", "true") == "true",
)
_counter: redis.Redis[bytes] | None = None


@app.task(name="bench.noop", ignore_result=True)
def noop() -> None:
    """Does nothing but count itself, so the benchmark knows when all ran."""
    global _counter
    if _counter is None:
        _counter = redis.Redis.from_url(client_url(broker))
    _counter.incr("bench:noop:done")
