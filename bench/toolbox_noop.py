"""The agent workers' own Celery app running a no-op: its configuration's cost, no engine.

Started as the agent worker of ``bench.engine`` (``celery -A bench.toolbox_noop``),
it serves the real agent tasks too.  Its no-op goes through the same queue,
priority lists, reliability options, signals and child recycling as an
agent task, and like the raw no-op only increments a Redis counter, so the
gap between the two no-ops is what the configuration costs and the gap to
the agent tasks is what the engine costs.
"""

from __future__ import annotations

from workers.app import app
from workers.celeryconfig import AGENT_QUEUE
from workers.redis import get_redis

COUNTER = "bench:toolbox-noop:done"

__all__ = ["app", "noop"]


@app.task(name="bench.toolbox_noop", ignore_result=True)
def noop() -> None:
    """Does nothing but count itself."""
    get_redis().incr(COUNTER)


def send(count: int) -> None:
    """``count`` no-ops on the agent queue, at the priority an echo task gets."""
    with app.producer_or_acquire() as producer:
        for _ in range(count):
            noop.apply_async(producer=producer, queue=AGENT_QUEUE)
