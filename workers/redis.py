"""A redis-py client on the broker's Redis, one per process (progress events, health)."""

from __future__ import annotations

import os
from typing import Any

import redis

from workers.celeryconfig import build_config
from workers.settings import get_settings

_clients: dict[int, redis.Redis[bytes]] = {}


def client_url(broker_url: str) -> str:
    """kombu's ``redis+socket://`` spelling is redis-py's ``unix://``."""
    if broker_url.startswith("redis+socket://"):
        return "unix://" + broker_url.removeprefix("redis+socket://")
    return broker_url


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
