"""A redis-py client on the broker's Redis, one per process (progress events, health).

Also what tells a Redis that refuses the broker URL's settings (``refusal``)
from one that is down: a wrong database number (``DB index is out of
range``), password or user is answered with an error, never fixed by waiting.
"""

from __future__ import annotations

import os
from typing import Any

import redis

from models.redaction import redact
from workers.celeryconfig import build_config
from workers.settings import ENV_PREFIX, get_settings

_clients: dict[int, redis.Redis[bytes]] = {}


def client_url(broker_url: str) -> str:
    """kombu's ``redis+socket://`` spelling is redis-py's ``unix://``.

    A socket's database number, which kombu reads from ``?virtual_host=N`` (it ignores
    ``?db=N``), is redis-py's ``?db=N`` (which takes no ``virtual_host``).
    """
    if not broker_url.startswith("redis+socket://"):
        return broker_url
    address, mark, query = broker_url.removeprefix("redis+socket://").partition("?")
    items = [
        "db=" + item.removeprefix("virtual_host=") if item.startswith("virtual_host=") else item
        for item in query.split("&")
    ]
    return f"unix://{address}{mark}{'&'.join(items)}"


_SETTING_ERRORS = (redis.AuthenticationError, redis.exceptions.NoPermissionError)
_SETTING_ANSWERS = ("db index is out of range", "invalid db index", "wrongpass", "noauth")
"""How Redis answers a wrong database number or login (``ResponseError`` by its words):
anything else it answers (``MISCONF`` on a full disk, ``READONLY`` mid-failover, ``OOM``)
may pass by itself, and a submit keeps its task for the relay as for an outage."""


def refusal(error: BaseException | None) -> redis.RedisError | None:
    """The error with which a Redis that answers refused the URL's settings, else None.

    ``error`` or what caused it (kombu wraps redis-py's errors in its own
    ``OperationalError``): a wrong database number, password or user, an
    ACL that forbids a command.  Not a Redis that is down, unreachable or
    answering with a passing trouble, which may come back.
    """
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, _SETTING_ERRORS) or (
            isinstance(error, redis.ResponseError)
            and any(answer in str(error).lower() for answer in _SETTING_ANSWERS)
        ):
            return error
        error = error.__cause__ or error.__context__
    return None


def refused_message(error: BaseException) -> str:
    """``Redis refuses TOOLBOX_REDIS_URL=redis://:***@host:6379/99 (DB index is out of range)``."""
    text = str(error).strip()
    reason = redact(text.splitlines()[0]) if text else type(error).__name__
    url = redact(get_settings().redis_url or "(embedded)")
    return f"Redis refuses {ENV_PREFIX}REDIS_URL={url} ({reason}); fix the setting"


def get_redis() -> redis.Redis[bytes]:
    client = _clients.get(os.getpid())
    if client is None:
        url = build_config(get_settings())["broker_url"]
        client = redis.Redis.from_url(client_url(url), socket_timeout=5, socket_connect_timeout=5)
        _clients.clear()
        _clients[os.getpid()] = client
    return client


def progress_channel(workflow_id: Any) -> str:
    return f"toolbox:progress:{workflow_id}"
