"""A kombu 5.7 Redis transport defect that stops a busy worker when Redis restarts.

When a worker with an unacknowledged message (a running task: late acks)
loses Redis, Celery closes the lost connection.  kombu detaches the
transport from its connection (``transport.client = None``) and then closes
the channel again, which tries to restore the unacknowledged message to its
queue: the Redis channel builds a new connection pool from
``transport.client.hostname`` and raises ``AttributeError``.  Celery only
recovers from the transport's connection errors, so it logs ``Unrecoverable
error: AttributeError("'NoneType' object has no attribute 'hostname'")``, lets
the running tasks finish and exits: under ``toolbox up`` the whole stack stops.

A detached transport has no broker to reach, which is what a connection
error says; raised as one, Celery's cleanup ignores it and reconnects.  The
message stays in Redis's unacknowledged set, where kombu restores it after
the visibility timeout if Redis kept it; the task's row in PostgreSQL decides
whether it runs again (a finished task never does; a task whose worker died is
the reaper's).  The same detached-connection cleanup is kombu issue #582
(there from gossip's channel).  A kombu without ``Channel._connparams`` is
left as it is: the fix is for the 5.x transport this project pins.
"""

from __future__ import annotations

from typing import Any

import redis
from kombu.transport import redis as kombu_redis

_MARK = "_toolbox_detached_check"


def apply() -> None:
    """Make a Redis channel whose transport is detached raise a connection error (idempotent)."""
    channel: Any = kombu_redis.Channel
    original = getattr(channel, "_connparams", None)
    if original is None or getattr(original, _MARK, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is closed")
        params: dict[str, Any] = original(self, asynchronous=asynchronous)
        return params

    setattr(_connparams, _MARK, True)
    channel._connparams = _connparams
