"""Queue depths read straight from the broker's Redis lists.

kombu's Redis transport keeps priority 0 of queue ``q`` in the list ``q`` and
priority n > 0 in ``q + '\\x06\\x16' + str(n)``; messages delivered but not
yet acknowledged wait in the ``unacked`` hash.  Our priority 9 (highest) is
broker priority 0 (``celeryconfig.broker_priority``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import redis

from workers.celeryconfig import PRIORITY_STEPS, QUEUES, broker_priority

PRIORITY_SEPARATOR = "\x06\x16"
UNACKED_KEY = "unacked"


def priority_key(queue: str, step: int) -> str:
    return queue if step == 0 else f"{queue}{PRIORITY_SEPARATOR}{step}"


@dataclass(frozen=True)
class QueueDepth:
    name: str
    depth: int
    by_priority: dict[int, int] = field(default_factory=dict)
    """Waiting messages per task priority (9 highest), only the non-empty ones."""


@dataclass(frozen=True)
class BrokerSnapshot:
    queues: list[QueueDepth]
    unacked: int

    @property
    def total(self) -> int:
        return sum(queue.depth for queue in self.queues)


def read_queues(client: redis.Redis[bytes], queues: tuple[str, ...] = QUEUES) -> BrokerSnapshot:
    """One pipelined round trip: LLEN of every priority list, HLEN of ``unacked``."""
    pipeline = client.pipeline(transaction=False)
    for queue in queues:
        for step in PRIORITY_STEPS:
            pipeline.llen(priority_key(queue, step))
    pipeline.hlen(UNACKED_KEY)
    lengths = [int(value) for value in pipeline.execute()]
    result, width = [], len(PRIORITY_STEPS)
    for index, queue in enumerate(queues):
        counts = lengths[index * width : (index + 1) * width]
        # broker_priority is its own inverse: it maps broker steps back to task priorities.
        pairs = zip(PRIORITY_STEPS, counts, strict=True)
        by_priority = {broker_priority(step): count for step, count in pairs if count}
        result.append(QueueDepth(queue, sum(counts), dict(sorted(by_priority.items()))))
    return BrokerSnapshot(result, lengths[-1])
