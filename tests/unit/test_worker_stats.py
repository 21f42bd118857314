"""What a worker's stats (``celery inspect stats``, Flower) show of the broker connection."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from celery.worker.consumer.connection import Connection as ConnectionStep
from kombu import Connection

from workers import kombu_fixes


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis+socket://:s3cret-pw@/tmp/toolbox.sock", "redis+socket://:***@/tmp/toolbox.sock"),
        ("redis+socket:///tmp/toolbox.sock?password=s3cret-pw",
         "redis+socket:///tmp/toolbox.sock?password=***"),
        ("redis://:s3cret-pw@127.0.0.1:6379/0", "127.0.0.1"),
    ],
)  # fmt: skip
def test_the_broker_hostname_in_a_workers_stats_hides_the_password(url: str, shown: str) -> None:
    """kombu keeps a socket URL whole as the connection's hostname; Celery drops only the
    ``password`` field, so Flower's worker page showed the socket URL's password."""
    kombu_fixes.mask_stats_hostname()
    kombu_fixes.mask_stats_hostname()  # idempotent: wrapped once
    consumer = SimpleNamespace(connection=Connection(url))
    broker = ConnectionStep.info(None, consumer)["broker"]
    assert broker["hostname"] == shown
    assert "s3cret-pw" not in repr(broker)
