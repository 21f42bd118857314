"""Both ways ``submit`` writes rows: the one-statement direct path and the checked path."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from agents import recovery
from models.errors import ConfigurationError, ValidationFailed
from workers import client, dispatch
from workers.db import get_engine

COLUMNS = (
    "agent_id, task_type, task_name, input_data, status, priority, created_by,"
    " idempotency_key, parent_task_id, (workflow_id = id) AS own_workflow,"
    " nullif(workflow_id, id) AS shared_workflow,"
    " dispatched_at IS NOT NULL AS dispatched"
)


def rows(engine: Engine, ids: list[uuid.UUID]) -> list[dict[str, Any]]:
    with engine.connect() as connection:
        found = {
            row["id"]: {key: value for key, value in row.items() if key != "id"}
            for row in connection.execute(
                text(f"SELECT id, {COLUMNS} FROM agent_tasks WHERE id = ANY(:ids)"), {"ids": ids}
            ).mappings()
        }
    return [found[task_id] for task_id in ids]


@pytest.fixture
def statements(toolbox_env: dict[str, str]) -> Iterator[list[str]]:
    """Every statement the client's engine sends (pre-pings excepted)."""
    sent: list[str] = []

    def record(*args: Any) -> None:
        sent.append(args[2])

    event.listen(get_engine(), "before_cursor_execute", record)
    yield sent
    event.remove(get_engine(), "before_cursor_execute", record)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"priority": 8, "created_by": uuid.UUID(int=7), "task_name": "lesson 4"},
        {"workflow_id": uuid.UUID(int=42)},
    ],
)
def test_the_direct_path_writes_what_the_checked_path_writes(
    engine: Engine, statements: list[str], options: dict[str, Any]
) -> None:
    if "created_by" in options:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO users (id, username, email, password_hash, role)"
                    " VALUES (:id, 'ms-rivera', 'rivera@school.example', '-', 'teacher')"
                ),
                {"id": options["created_by"]},
            )
    inputs = [{"message": "one"}, {"message": "two", "phase_seconds": 0.5}, {}]
    direct = client.submit_many("echo", inputs, **options)
    assert len(statements) == 1, "one self-committing INSERT of rows already queued"
    with Session(get_engine()) as session, session.begin():
        checked = client.submit_many("echo", inputs, session=session, **options)
    assert len(set(direct) | set(checked)) == 6
    assert rows(engine, direct) == rows(engine, checked)
    first = rows(engine, direct)[0]
    assert first["status"] == "queued" and first["dispatched"]
    assert first["input_data"]["message"] == "one"


def test_an_agent_given_by_id_and_a_child_task_take_the_checked_path(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    with engine.connect() as connection:
        agent_id = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()
    parent = client.submit(agent_id, {"message": "parent"})
    child = client.submit("echo", {"message": "child"}, parent_task_id=parent)
    parent_row, child_row = rows(engine, [parent, child])
    assert parent_row["agent_id"] == agent_id and parent_row["own_workflow"]
    assert child_row["parent_task_id"] == parent and child_row["shared_workflow"] == parent


def test_refusals_come_from_the_checked_path_and_write_nothing(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    with pytest.raises(ValidationFailed, match="priority: must be between 0 and 9"):
        client.submit("echo", {}, priority=12)
    with pytest.raises(ValidationFailed, match="idempotency_key: only for a single task"):
        client.submit_many("echo", [{}, {}], idempotency_key="twice")
    with engine.begin() as connection:
        connection.execute(text("UPDATE ai_agents SET timeout_seconds = 999999"))
    with pytest.raises(ConfigurationError, match="above the supported maximum"):
        client.submit("echo", {})
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM agent_tasks")).scalar_one() == 0


def test_a_reused_idempotency_key_costs_the_direct_path_nothing(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    first = client.submit("echo", {"message": "a"}, idempotency_key="lesson-7")
    assert client.submit("echo", {"message": "a"}, idempotency_key="lesson-7") == first
    (row,) = rows(engine, [first])
    assert row["input_data"]["message"] == "a" and row["idempotency_key"] == "lesson-7"


def test_rows_the_broker_refused_go_back_to_pending_for_the_relay(
    engine: Engine, toolbox_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The broker fails after the first message of a batch (a fault injected into ``publish``)."""
    real_publish = dispatch.publish

    def first_only(batch: list[dispatch.Envelope], **options: bool) -> dispatch.Published:
        return real_publish(batch[:1], **options)

    monkeypatch.setattr(dispatch, "publish", first_only)
    ids = client.submit_many("echo", [{"message": "sent"}, {"message": "late"}, {}])
    sent, *refused = rows(engine, ids)
    assert sent["status"] == "queued" and sent["dispatched"]
    assert [(row["status"], row["dispatched"]) for row in refused] == [("pending", False)] * 2
    with engine.begin() as connection:
        assert set(recovery.undispatched(connection, older_than=0)) == set(ids[1:])


def test_submit_and_report_says_whether_the_broker_took_the_message(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    taken = client.submit_and_report("echo", {"message": "now"}, idempotency_key="lesson-9")
    assert taken.broker_error is None
    assert rows(engine, [taken.task_id])[0]["status"] == "queued"
    again = client.submit_and_report("echo", {"message": "now"}, idempotency_key="lesson-9")
    assert again == client.Submitted(taken.task_id)  # the first task; nothing was sent
    refused = subprocess.run(
        [sys.executable, "-c",
         "from workers import client; s = client.submit_and_report('echo', {});"
         " print(s.task_id, type(s.broker_error).__name__)"],
        env={**os.environ, **toolbox_env, "TOOLBOX_REDIS_URL": "redis://127.0.0.1:1/0"},
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 0, refused.stderr
    task_id, error = refused.stdout.split()
    assert error == "OperationalError"
    (row,) = rows(engine, [uuid.UUID(task_id)])
    assert (row["status"], row["dispatched"]) == ("pending", False)
