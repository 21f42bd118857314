"""The review's verdict on the SPARC states of the artifacts it judged."""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, Engine, text

from agents.workflow import mark_reviewed
from tests.integration.ops_support import insert


def _artifact(
    connection: Connection, agents: dict[str, uuid.UUID], root: uuid.UUID, kind: str, round_: int
) -> uuid.UUID:
    task: uuid.UUID = insert(
        connection, "agent_tasks", json=("context_data", "input_data"), agent_id=agents[kind],
        task_type=kind, input_data={},
        task_name=f"{kind} (artifact, round {round_})", status="completed", workflow_id=root,
        parent_task_id=root, context_data={"role": "artifact", "round": round_},
        completed_at_ago=10 - round_,
    )  # fmt: skip
    insert(
        connection, "agent_states", json=("state_data",), agent_id=agents[kind], task_id=task,
        workflow_id=root, state_type="result", state_data={},
        sequence_number=int(task.int % 1_000_000),
    )  # fmt: skip
    return task


def _verdicts(engine: Engine, *tasks: uuid.UUID) -> list[tuple[bool, bool]]:
    with engine.connect() as connection:
        return [
            tuple(connection.execute(
                text("SELECT approved, reviewed_by IS NOT NULL FROM agent_states"
                     " WHERE task_id = :id"), {"id": task},
            ).one())
            for task in tasks
        ]  # type: ignore[misc]  # fmt: skip


def test_an_approval_after_a_revision_round_marks_every_stored_artifact(engine: Engine) -> None:
    """Artifacts of round 0 that needed no revision kept round 0's rejection, though the
    approved environment stores them; the original of a revised one stays rejected."""
    with engine.begin() as connection:
        agents = {
            row.agent_type: row.id
            for row in connection.execute(text("SELECT agent_type, id FROM ai_agents"))
        }
        root: uuid.UUID = insert(
            connection, "agent_tasks", json=("input_data",), agent_id=agents["supervisor"],
            task_type="supervisor", task_name="workflow", status="completed", input_data={},
        )  # fmt: skip
        content_0 = _artifact(connection, agents, root, "content", 0)
        quiz_0 = _artifact(connection, agents, root, "quiz", 0)
        content_1 = _artifact(connection, agents, root, "content", 1)
    with engine.begin() as connection:
        mark_reviewed(connection, root, 0, agents["review"], approved=False)
    assert _verdicts(engine, content_0, quiz_0, content_1) == [
        (False, True), (False, True), (False, False),
    ]  # fmt: skip
    with engine.begin() as connection:
        mark_reviewed(connection, root, 1, agents["review"], approved=True)
    assert _verdicts(engine, content_0, quiz_0, content_1) == [
        (False, True), (True, True), (True, True),
    ]  # fmt: skip
