"""Two changes to kombu 5.7's Redis transport (a defect fixed, a cost removed) and
one to what Celery's worker stats show of it (a password kept out).

**A defect that stops a busy worker when Redis restarts.**

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

**A client built for every command.**  The channel's ``conn_or_acquire``
builds a new ``redis.Redis`` around its connection pool for each publish,
each unacked-message bookkeeping step and each event, and redis-py 8 copies
its table of about 200 response callbacks into every new client: about
90 µs of CPU, twice per task in a worker's main process and once or twice
per message sent.  A client holds no connection of its own (it takes one
from the pool per command and is safe to share between threads), so each
channel keeps one per pool and builds a new one only when the pool changes
(after a reconnect).

**A socket URL's password in the worker's stats.**  ``celery inspect stats``
and Flower's worker pages show the broker connection's ``info()``; Celery
drops its ``password`` field, but kombu keeps a ``redis+socket://`` URL whole
as the ``hostname`` (the transport parses it again), password included.  The
stats show that hostname with the password masked, as every log line does.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import redis
from kombu.transport import redis as kombu_redis

from models.redaction import redact

_APPLIED = "_toolbox_applied"
"""Marks a method this module installed, so a second ``apply`` wraps nothing twice."""
_KEPT = "_toolbox_kept_client"


def apply() -> None:
    """Both transport changes, on kombu's Redis channel class (idempotent)."""
    _raise_when_detached()
    _keep_clients()


def _raise_when_detached() -> None:
    """Make a Redis channel whose transport is detached raise a connection error."""
    channel: Any = kombu_redis.Channel
    original = getattr(channel, "_connparams", None)
    if original is None or getattr(original, _APPLIED, False):
        return

    def _connparams(self: Any, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection is closed")
        params: dict[str, Any] = original(self, asynchronous=asynchronous)
        return params

    setattr(_connparams, _APPLIED, True)
    channel._connparams = _connparams


def _keep_clients() -> None:
    """One synchronous client per channel and pool, instead of one per command."""
    channel: Any = kombu_redis.Channel
    original = getattr(channel, "conn_or_acquire", None)
    if original is None or getattr(original, _APPLIED, False):
        return

    @contextlib.contextmanager
    def conn_or_acquire(self: Any, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        pool = self.pool
        kept = self.__dict__.get(_KEPT)
        if kept is None or kept.connection_pool is not pool:
            kept = self.__dict__[_KEPT] = self._create_client()
        yield kept

    setattr(conn_or_acquire, _APPLIED, True)
    channel.conn_or_acquire = conn_or_acquire


def mask_stats_hostname() -> None:
    """The broker ``hostname`` of a worker's stats with any URL password masked
    (idempotent; at worker start: a service importing the app skips Celery's worker code)."""
    from celery.worker.consumer import connection as consumer_connection

    step: Any = consumer_connection.Connection
    original = step.info
    if getattr(original, _APPLIED, False):
        return

    def info(self: Any, c: Any) -> dict[str, Any]:
        shown: dict[str, Any] = original(self, c)
        broker = shown.get("broker")
        if isinstance(broker, dict) and isinstance(broker.get("hostname"), str):
            broker["hostname"] = redact(broker["hostname"])
        return shown

    setattr(info, _APPLIED, True)
    step.info = info
