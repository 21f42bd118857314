"""A retry whose message the broker refused: the relay sends it once it is due.

Celery's ``Task.retry`` turns a failed publish into ``Reject(requeue=False)``:
the delivery is dropped and no retry message exists.  The row is the truth:
it stays ``retrying`` with ``dispatched_at`` NULL, and the relay sends it as
soon as its ``not_before`` has passed, rather than
``TOOLBOX_REDISPATCH_AFTER_SECONDS`` (300 s) later as a lost message.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from tests.integration.ops_support import count, free_port
from tests.integration.test_broker_restart import PrivateRedis, private_redis  # noqa: F401
from tests.integration.test_broker_restart import submit as submit_elsewhere
from tests.integration.test_engine_faults import phase_metrics, states_written
from tests.workers import StartWorker, wait_for
from workers import client, dispatch
from workers.celeryconfig import AGENT_QUEUE, broker_priority
from workers.jobs.queues import priority_key
from workers.redis import client_url

pytestmark = [pytest.mark.worker, pytest.mark.slow]

SECRET = "payload-that-never-reaches-a-log"
PHASE_SECONDS = 1.0


def row(engine: Engine, task_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as connection:
        found = connection.execute(
            text(
                "SELECT status, retry_count, dispatched_at, not_before, now() AS now,"
                " error_message, error_details FROM agent_tasks WHERE id = :id"
            ),
            {"id": task_id},
        ).mappings()
        return dict(found.one())


def waiting_messages(broker: redis.Redis, key: str) -> list[uuid.UUID]:
    return [uuid.UUID(json.loads(raw)["headers"]["id"]) for raw in broker.lrange(key, 0, -1)]


@pytest.fixture
def broker(toolbox_env: dict[str, str]) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(client_url(toolbox_env["TOOLBOX_REDIS_URL"]))
    yield connection
    connection.close()


WAITING = priority_key(AGENT_QUEUE, broker_priority(5))
"""The list of the agent messages of priority 5."""


def unsent_retry(engine: Engine, broker: redis.Redis, due_in: float) -> uuid.UUID:
    """A task whose attempt failed and whose retry, due in ``due_in`` s, was never sent."""
    task = client.submit("echo", {"message": "retry me"}, priority=5)  # its message waits
    assert waiting_messages(broker, WAITING) == [task]
    broker.delete(WAITING)  # delivered
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE agent_tasks SET status = 'retrying', retry_count = 1,"
                 " not_before = now() + make_interval(secs => :due_in) WHERE id = :id"),
            {"id": task, "due_in": due_in},
        )  # fmt: skip
        assert dispatch.retry_unsent(connection, task)
    assert row(engine, task)["dispatched_at"] is None
    return task


def test_the_relay_sends_an_unsent_retry_once_and_not_before_it_is_due(
    engine: Engine, broker: redis.Redis
) -> None:
    from tasks.maintenance import relay

    task = unsent_retry(engine, broker, due_in=30)
    assert relay.run() == {"sent": 0, "undispatched": 0, "lost": 0}, "the backoff holds"
    assert waiting_messages(broker, WAITING) == []

    with engine.begin() as connection:  # its time has come
        connection.execute(
            text("UPDATE agent_tasks SET not_before = now() - interval '0.1 s' WHERE id = :id"),
            {"id": task},
        )
    assert relay.run() == {"sent": 1, "undispatched": 1, "lost": 0}
    assert waiting_messages(broker, WAITING) == [task]
    after = row(engine, task)
    assert after["status"] == "retrying" and after["dispatched_at"] is not None

    assert relay.run() == {"sent": 0, "undispatched": 0, "lost": 0}, "one message per retry"
    assert waiting_messages(broker, WAITING) == [task]


def test_an_unsent_retry_long_past_its_time_gets_one_message(
    engine: Engine, broker: redis.Redis
) -> None:
    """The lost-message path (``not_before`` older than 300 s) leaves it to the unsent one."""
    from tasks.maintenance import relay

    task = unsent_retry(engine, broker, due_in=-400)
    assert relay.run() == {"sent": 1, "undispatched": 1, "lost": 0}
    assert waiting_messages(broker, WAITING) == [task]


def test_with_the_database_away_too_an_unsent_retry_logs_one_line_and_raises_nothing(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from workers import runtime

    nowhere = create_engine(f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/toolbox")
    monkeypatch.setattr(runtime, "get_engine", lambda: nowhere)
    task = uuid.uuid4()
    with caplog.at_level(logging.WARNING, logger=runtime.__name__):
        runtime.retry_not_sent(task, ConnectionRefusedError())
    assert [record.getMessage() for record in caplog.records] == [
        f"retry of agent task {task} not sent (ConnectionRefusedError) nor recorded"
        " (database: OperationalError); the relay sends it 300 s after it is due"
    ]
    nowhere.dispose()


def test_a_slot_waits_unsent_message_puts_its_row_back_to_pending_for_the_relay(
    engine: Engine, broker: redis.Redis
) -> None:
    """A task that found no concurrency slot is re-sent through the same ``retry``: a
    ``queued`` row whose new message did not go out is ``pending`` again, as after a
    submit the broker refused, and the relay sends it at its next run."""
    from tasks.maintenance import relay

    task = client.submit("echo", {"message": "waits for a slot"}, priority=5)
    broker.delete(WAITING)  # delivered, and its re-send failed
    with engine.begin() as connection:
        assert dispatch.retry_unsent(connection, task)
        connection.execute(  # older than the relay's RELAY_AFTER_SECONDS
            text("UPDATE agent_tasks SET created_at = now() - interval '5 s' WHERE id = :id"),
            {"id": task},
        )
    assert (row(engine, task)["status"], row(engine, task)["dispatched_at"]) == ("pending", None)
    assert relay.run() == {"sent": 1, "undispatched": 1, "lost": 0}
    assert waiting_messages(broker, WAITING) == [task]
    assert row(engine, task)["status"] == "queued"


def test_a_row_that_moved_on_is_not_marked_unsent(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    task = client.submit("echo", {"message": "done"})
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE agent_tasks SET status = 'completed' WHERE id = :id"), {"id": task}
        )
        assert not dispatch.retry_unsent(connection, task)
    assert row(engine, task)["status"] == "completed"
    assert row(engine, task)["dispatched_at"] is not None


@pytest.mark.parametrize("way", ["in the caller's session", "by agent id"])
def test_a_submits_late_mark_leaves_a_retry_the_broker_refused_to_the_relay(
    engine: Engine, broker: redis.Redis, monkeypatch: pytest.MonkeyPatch, way: str
) -> None:
    """Both ways send the message, then mark the row dispatched.  In between, a worker
    may take the message, run the task and fail to send its retry: the mark set
    ``dispatched_at`` again, so the relay took the retry for sent and it waited for
    the lost-message sweep (300 s) instead of its backoff."""
    from tasks.maintenance import relay

    real_publish = dispatch.publish

    def publish_then_a_worker_retries(batch: Any, **options: bool) -> dispatch.Published:
        published = real_publish(batch, **options)
        broker.delete(WAITING)  # delivered; the attempt failed and its retry was refused
        with engine.begin() as connection:
            for task in published.sent:
                connection.execute(
                    text("UPDATE agent_tasks SET status = 'retrying', retry_count = 1,"
                         " not_before = now() - interval '0.1 s' WHERE id = :id"),
                    {"id": task},
                )  # fmt: skip
                assert dispatch.retry_unsent(connection, task)
        return published

    monkeypatch.setattr(dispatch, "publish", publish_then_a_worker_retries)
    if way == "by agent id":
        with engine.connect() as connection:
            agent = connection.execute(
                text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
            ).scalar_one()
        task = client.submit(agent, {"message": "retry me"}, priority=5)
    else:
        with Session(engine) as session, session.begin():
            task = client.submit("echo", {"message": "retry me"}, priority=5, session=session)
    after = row(engine, task)
    assert (after["status"], after["dispatched_at"]) == ("retrying", None)
    monkeypatch.setattr(dispatch, "publish", real_publish)
    assert relay.run() == {"sent": 1, "undispatched": 1, "lost": 0}, "sent as soon as it is due"
    assert waiting_messages(broker, WAITING) == [task]


def test_a_retry_refused_by_a_stopped_redis_runs_soon_after_it_is_due(
    start_worker: StartWorker,
    engine: Engine,
    toolbox_env: dict[str, str],
    private_redis: PrivateRedis,  # noqa: F811
) -> None:
    """Redis stops while the first attempt runs; the attempt fails (retryable) and its
    retry cannot be published.  It used to wait 300 s for the lost-message path."""
    env = {**os.environ, **toolbox_env, "TOOLBOX_REDIS_URL": private_redis.url}
    worker = start_worker(
        queues="agents,maintenance",
        concurrency=2,
        beat=True,
        extra_env={"TOOLBOX_REDIS_URL": private_redis.url},
    )
    task = submit_elsewhere(env, SECRET, PHASE_SECONDS, fail_phase="action", fail_attempts=1)
    wait_for(lambda: len(states_written(engine, task)) >= 1, timeout=60)
    private_redis.stop()
    wait_for(lambda: f"retry of agent task {task} not sent" in worker.log(), timeout=60)
    waiting = row(engine, task)
    assert waiting["status"] == "retrying" and waiting["retry_count"] == 1
    assert waiting["dispatched_at"] is None, "the row says its retry was not sent"
    assert waiting["error_message"] == "echo drill: action failed on attempt 1"
    due = waiting["not_before"]
    assert due is not None
    private_redis.start()
    back = row(engine, task)["now"]

    view = client.wait(task, timeout=60)
    assert view.status == "completed", view.error_message
    assert view.retry_count == 1 and view.delivery_count == 1
    assert view.error_details is not None and view.error_details["type"] == "EchoFailure"
    assert [state.state_type for state in view.states] == [
        "situation", "problem", "action", "result", "context",
    ]  # fmt: skip
    assert sorted(phase_metrics(engine, task)) == ["action", "context", "result"]
    assert worker.log().count(f"Task toolbox.agent.run[{task}] received") == 2
    assert view.completed_at is not None
    late = (view.completed_at - due).total_seconds()
    began = states_written(engine, task)[2][1] - dt.timedelta(seconds=PHASE_SECONDS)
    print(
        f"\nredis back {(back - due).total_seconds():+.1f} s from the retry's not_before;"
        f" the retry began {(began - due).total_seconds():.1f} s and completed"
        f" {late:.1f} s after it"
    )
    assert late < 30, "sent by the relay, not the 300 s lost-message path"
    lines = [line for line in worker.log().splitlines() if f"agent task {task} not sent" in line]
    assert len(lines) == 1 and "WARNING" in lines[0], lines
    assert SECRET not in worker.log()
    assert count(engine, "SELECT count(*) FROM agent_tasks WHERE status <> 'completed'") == 0
