"""The relay under a backlog: waiting messages are not lost ones."""

from __future__ import annotations

import redis
from sqlalchemy import Engine, text

from tests.integration.ops_support import count
from workers import client
from workers.celeryconfig import AGENT_QUEUE, broker_priority
from workers.jobs.queues import priority_key
from workers.redis import client_url


def test_a_backlog_older_than_the_redispatch_age_gets_no_second_message(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """5,000 tasks for one small worker wait longer than 300 s: the relay sent every
    queued row a second message (500 every 5 s), and again every 300 s, though each
    still waited in Redis (7,000 messages for 5,000 rows after four runs).  Now only
    the rows a priority's list cannot hold are presumed lost: the oldest ones."""
    from tasks.maintenance import relay

    ids = [client.submit("echo", {"message": str(n)}, priority=5) for n in range(6)]
    broker = redis.Redis.from_url(client_url(toolbox_env["TOOLBOX_REDIS_URL"]))
    waiting = priority_key(AGENT_QUEUE, broker_priority(5))
    assert broker.llen(waiting) == 6
    with engine.begin() as connection:  # a backlog that waited longer than the redispatch age
        connection.execute(
            text("UPDATE agent_tasks SET dispatched_at = dispatched_at - interval '400 s'")
        )
    assert relay.run()["lost"] == 0
    assert broker.llen(waiting) == 6

    broker.rpop(waiting, 2)  # Redis lost the two oldest messages (the next to be delivered)
    assert relay.run() == {"sent": 2, "undispatched": 0, "lost": 2}
    assert broker.llen(waiting) == 6
    resent = "SELECT count(*) FROM agent_tasks WHERE dispatched_at > now() - interval '60 s'"
    assert count(engine, resent + " AND id = ANY(:ids)", ids=ids[:2]) == 2
    assert count(engine, resent) == 2
    assert relay.run()["lost"] == 0
    broker.close()
