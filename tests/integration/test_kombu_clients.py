"""kombu's Redis channel keeps one client per connection pool (``workers.kombu_fixes``)."""

from __future__ import annotations

from typing import Any

import redis
from kombu import Connection, Exchange, Queue

from workers import kombu_fixes
from workers.redis import client_url


def _clients_used(channel: Any, count: int) -> list[redis.Redis[bytes]]:
    clients = []
    for _ in range(count):
        with channel.conn_or_acquire() as client:
            clients.append(client)
    return clients


def test_a_channel_sends_every_command_through_one_client_until_its_pool_changes(
    redis_url: str,
) -> None:
    kombu_fixes.apply()
    kombu_fixes.apply()  # idempotent: a second call wraps nothing twice
    queue = Queue("kept-client", Exchange("kept-client"), "kept-client")
    with Connection(redis_url) as connection:
        channel: Any = connection.default_channel
        first = _clients_used(channel, 3)
        assert first[0] is first[1] is first[2]
        assert first[0].connection_pool is channel.pool

        producer = connection.Producer()
        for number in range(5):
            producer.publish({"n": number}, exchange=queue.exchange, routing_key="kept-client",
                             declare=[queue])  # fmt: skip
        with channel.conn_or_acquire() as client:
            assert client is first[0]  # the publishes kept it too

        channel._disconnect_pools()  # what a reconnect does: the next command builds a new pool
        after = _clients_used(channel, 2)
        assert after[0] is after[1] is not first[0]
        assert after[0].connection_pool is channel.pool

        given = redis.Redis.from_url(client_url(redis_url))
        with channel.conn_or_acquire(given) as client:
            assert client is given  # a caller's own client is used as it is
        given.close()

        received = [message.payload["n"] for message in _drain(connection, queue, 5)]
    assert received == [0, 1, 2, 3, 4]


def _drain(connection: Connection, queue: Queue, count: int) -> list[Any]:
    simple = connection.SimpleQueue(queue)
    try:
        messages = [simple.get(timeout=5) for _ in range(count)]
        for message in messages:
            message.ack()
        return messages
    finally:
        simple.close()
