"""The relay under a backlog: waiting messages are not lost ones."""

from __future__ import annotations

import json
import uuid

import redis
from sqlalchemy import Engine, text

from tests.integration.ops_support import count
from tests.integration.test_engine_hotpath import in_process_runner
from tests.integration.test_workflow import held_slot
from workers import client, dispatch
from workers.celeryconfig import AGENT_QUEUE, broker_priority
from workers.jobs.queues import priority_key
from workers.redis import client_url


def messages(broker: redis.Redis, key: str) -> list[uuid.UUID]:
    """The task ids of the messages waiting in one priority's list."""
    return [uuid.UUID(json.loads(raw)["headers"]["id"]) for raw in broker.lrange(key, 0, -1)]


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


def test_a_task_back_from_a_slot_wait_is_not_taken_for_a_lost_one(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """A task that finds no concurrency slot is published again by its Celery retry,
    behind the backlog, but its row kept the first message's ``dispatched_at``: the
    relay took it for the oldest row, the one whose message was delivered, and sent it
    a second message while the row whose message Redis lost waited for the backlog."""
    from tasks.maintenance import relay

    broker = redis.Redis.from_url(client_url(toolbox_env["TOOLBOX_REDIS_URL"]))
    waiting = priority_key(AGENT_QUEUE, broker_priority(5))
    with held_slot(engine, "echo"):
        ids = [client.submit("echo", {"message": str(n)}, priority=5) for n in range(4)]
        with engine.begin() as connection:  # a backlog older than the redispatch age
            connection.execute(
                text("UPDATE agent_tasks SET dispatched_at = dispatched_at - interval '400 s'")
            )
        broker.rpop(waiting)  # the oldest message is delivered: its task finds no slot
        decision = in_process_runner([]).execute(ids[0])
        assert (decision.action, decision.reason) == ("retry", "no concurrency slot")
        with engine.connect() as connection:  # what the Celery task's retry publishes
            assert dispatch.send(dispatch.envelopes(connection, [ids[0]])) == [ids[0]]
        broker.rpop(waiting)  # Redis lost the next message to be delivered

        assert relay.run() == {"sent": 1, "undispatched": 0, "lost": 1}
        assert sorted(messages(broker, waiting)) == sorted(ids), "each task has one message"
    broker.close()


def test_a_retrying_task_waiting_for_a_slot_gets_no_message_from_the_relay(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """A retry due long ago whose task keeps finding no slot (its agent's slots held by
    long tasks) kept that ``not_before``: once it was older than the redispatch age, the
    relay sent the row another message at every run (5 s), each of them re-queued
    through slot waits until the task ran."""
    from tasks.maintenance import relay

    broker = redis.Redis.from_url(client_url(toolbox_env["TOOLBOX_REDIS_URL"]))
    waiting = priority_key(AGENT_QUEUE, broker_priority(5))
    with held_slot(engine, "echo"):
        task = client.submit("echo", {"message": "again"}, priority=5)
        with engine.begin() as connection:  # its retry was due 400 s ago
            connection.execute(
                text("UPDATE agent_tasks SET status = 'retrying', retry_count = 1,"
                     " not_before = now() - interval '400 s',"
                     " dispatched_at = dispatched_at - interval '410 s'"),
            )  # fmt: skip
        assert messages(broker, waiting) == [task]
        broker.rpop(waiting)  # delivered: it finds no slot
        decision = in_process_runner([]).execute(task)
        assert (decision.action, decision.reason) == ("retry", "no concurrency slot")
        with engine.connect() as connection:  # what the Celery task's retry publishes
            assert dispatch.send(dispatch.envelopes(connection, [task])) == [task]

        assert relay.run() == {"sent": 0, "undispatched": 0, "lost": 0}
        assert messages(broker, waiting) == [task]
        assert count(engine, "SELECT count(*) FROM agent_tasks WHERE status = 'retrying'") == 1
    broker.close()
