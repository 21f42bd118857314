"""Workflows: supervisor -> content, quiz, terrain, script in parallel -> review -> done.

Everything moves through the database, inside the transaction that completes
(or fails) a task, so a workflow survives worker restarts:

- the supervisor's completion writes the child rows;
- each child's completion locks the workflow's root row; the one that finds
  every sibling of its round completed writes the review task (fan-in);
- the review's completion either stores the environment (``agents.persist``)
  and marks the workflow completed, or writes one round of revision tasks,
  or fails the workflow;
- a child that fails for good, or is cancelled, ends the workflow and
  cancels what is still waiting (``end_task``; a user's cancel of a waiting
  task goes through ``agents.cancel``).

Lock order: every transaction that changes more than one task of a
workflow, or a task and the workflow, locks the root row first
(``lock_root``), then task rows.  A sibling's completion that took its own
row first and then waited for the root, while the transaction ending the
workflow held the root and waited for that sibling's row, would deadlock.

The root is the supervisor task (``workflow_id`` = its id); the workflow's own
state lives in its ``context_data['workflow']``.  Functions return the ids of
the tasks they created; the caller sends their messages after commit.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from agents import lifecycle
from agents.lifecycle import TaskRow
from agents.persist import persist_environment
from agents.registry import get_kind
from agents.schemas import EnvironmentRequest, ReviewInput
from models.errors import AgentUnavailable, PermanentError

MAX_REVISION_ROUNDS = 1
ROOT_AGENT = "supervisor"


def involved(task: TaskRow) -> bool:
    return task.parent_task_id is not None or task.agent_type == ROOT_AGENT


def lock_root(connection: Connection, root_id: uuid.UUID) -> dict[str, Any] | None:
    """Lock the workflow's root row (first: see the lock order above) and read it."""
    row = (
        connection.execute(
            text(
                "SELECT id, input_data, created_by, context_data FROM agent_tasks"
                " WHERE id = :id FOR UPDATE"
            ),
            {"id": root_id},
        )
        .mappings()
        .one_or_none()
    )
    return None if row is None else dict(row)


def _state(root: dict[str, Any]) -> dict[str, Any]:
    return dict((root["context_data"] or {}).get("workflow", {}))


def going_on(root: dict[str, Any] | None) -> bool:
    """The workflow has started (its supervisor planned the work) and has not ended."""
    return root is not None and _state(root).get("status") == "running"


def _save_state(connection: Connection, root_id: uuid.UUID, state: dict[str, Any]) -> None:
    connection.execute(
        text(
            "UPDATE agent_tasks SET context_data = coalesce(context_data, '{}'::jsonb)"
            " || jsonb_build_object('workflow', CAST(:state AS jsonb)) WHERE id = :id"
        ),
        {"id": root_id, "state": json.dumps(state)},
    )


_CREATE = text(
    "INSERT INTO agent_tasks (id, agent_id, parent_task_id, workflow_id, task_type, task_name,"
    " input_data, status, priority, created_by, context_data)"
    " SELECT :id, a.id, :parent, :workflow, a.agent_type, :name, :input, 'pending', a.priority,"
    " :created_by, :context FROM ai_agents a WHERE a.agent_type = :agent_type AND a.is_active"
    " ORDER BY a.name LIMIT 1 RETURNING id"
).bindparams(bindparam("input", type_=JSONB), bindparam("context", type_=JSONB))


def create_task(
    connection: Connection,
    root: dict[str, Any],
    agent_type: str,
    payload: dict[str, Any],
    *,
    role: str,
    round_: int,
) -> uuid.UUID:
    """Write one child row of the workflow (validated, ``pending``)."""
    validated = get_kind(agent_type).input_schema.model_validate(payload).model_dump(mode="json")
    task_id = uuid.uuid4()
    created = connection.execute(
        _CREATE,
        {
            "id": task_id,
            "parent": root["id"],
            "workflow": root["id"],
            "name": f"{agent_type} ({role}, round {round_})",
            "input": validated,
            "created_by": root["created_by"],
            "context": {"role": role, "round": round_},
            "agent_type": agent_type,
        },
    ).scalar_one_or_none()
    if created is None:
        raise AgentUnavailable(f"no active {agent_type!r} agent to run the workflow's {role}")
    return task_id


def on_completed(connection: Connection, task: TaskRow, output: dict[str, Any]) -> list[uuid.UUID]:
    """Move the workflow on after ``task`` completed; return the tasks it created."""
    root = lock_root(connection, task.workflow_id)
    if root is None:
        return []
    state = _state(root)
    if state.get("status") in {"completed", "failed", "cancelled"}:
        return []
    if task.id == root["id"]:
        return _start(connection, root, output)
    role, _round = _role(connection, task.id)
    if role == "review":
        return _reviewed(connection, root, state, task, output)
    return _artifact_done(connection, root, state)


def _role(connection: Connection, task_id: uuid.UUID) -> tuple[str, int]:
    row = connection.execute(
        text("SELECT context_data FROM agent_tasks WHERE id = :id"), {"id": task_id}
    ).scalar_one()
    context = row or {}
    return str(context.get("role", "artifact")), int(context.get("round", 0))


def _start(connection: Connection, root: dict[str, Any], plan: dict[str, Any]) -> list[uuid.UUID]:
    created = [
        create_task(
            connection, root, child["agent_type"], child["input"], role="artifact", round_=0
        )
        for child in plan.get("children", [])
    ]
    if not created:
        raise PermanentError("the supervisor planned no child tasks")
    _save_state(
        connection,
        root["id"],
        {"status": "running", "stage": "building", "round": 0, "needs": plan.get("needs", [])},
    )
    return created


def _artifact_done(
    connection: Connection, root: dict[str, Any], state: dict[str, Any]
) -> list[uuid.UUID]:
    round_ = int(state.get("round", 0))
    waiting = connection.execute(
        text(
            "SELECT count(*) FROM agent_tasks WHERE parent_task_id = :root"
            " AND status <> 'completed' AND context_data->>'role' = 'artifact'"
            " AND (context_data->>'round')::int = :round"
        ),
        {"root": root["id"], "round": round_},
    ).scalar_one()
    if waiting or state.get("stage") not in {"building", "revising"}:
        return []
    request = EnvironmentRequest.model_validate(root["input_data"])
    review = ReviewInput.from_outputs(request, latest_outputs(connection, root["id"]))
    created = create_task(
        connection, root, "review", review.model_dump(mode="json"), role="review", round_=round_
    )
    _save_state(connection, root["id"], {**state, "stage": "reviewing"})
    return [created]


_LATEST_ARTIFACTS = (
    "SELECT DISTINCT ON (task_type) id, task_type, output_data FROM agent_tasks"
    " WHERE parent_task_id = :root AND status = 'completed' AND context_data->>'role' = 'artifact'"
    " ORDER BY task_type, (context_data->>'round')::int DESC, completed_at DESC"
)
"""The newest completed artifact per agent type: a revision replaces its original."""


def latest_outputs(connection: Connection, root_id: uuid.UUID) -> dict[str, dict[str, Any]]:
    """The newest completed artifact output per agent type (revisions replace originals)."""
    rows = connection.execute(text(_LATEST_ARTIFACTS), {"root": root_id}).all()
    return {row.task_type: dict(row.output_data or {}) for row in rows}


def mark_reviewed(
    connection: Connection, root_id: uuid.UUID, round_: int, reviewer: uuid.UUID, approved: bool
) -> None:
    """Record the review's verdict on the SPARC states of the artifacts it judged.

    A rejection judged this round's artifacts.  An approval stores the newest
    artifact of each type, also those of an earlier round that needed no
    revision: they are marked approved too (they kept the earlier round's
    rejection), and an original replaced by its revision is left as it was.
    """
    judged = (
        _LATEST_ARTIFACTS
        if approved
        else "SELECT id FROM agent_tasks WHERE parent_task_id = :root"
        " AND context_data->>'role' = 'artifact' AND (context_data->>'round')::int = :round"
    )
    connection.execute(
        text(
            "UPDATE agent_states SET reviewed_by = :reviewer, approved = :approved"
            f" WHERE task_id IN (SELECT id FROM ({judged}) AS judged)"
        ),
        {"reviewer": reviewer, "approved": approved, "root": root_id, "round": round_},
    )


def _reviewed(
    connection: Connection,
    root: dict[str, Any],
    state: dict[str, Any],
    review: TaskRow,
    verdict: dict[str, Any],
) -> list[uuid.UUID]:
    if state.get("stage") != "reviewing":
        return []
    round_ = int(state.get("round", 0))
    approved = bool(verdict.get("approved"))
    mark_reviewed(connection, root["id"], round_, review.agent_id, approved)
    if approved:
        artifacts = persist_environment(
            connection,
            workflow_id=root["id"],
            outputs=latest_outputs(connection, root["id"]),
            created_by=root["created_by"],
            reviewer_id=review.agent_id,
            version=round_ + 1,
        )
        _save_state(
            connection,
            root["id"],
            {
                **state,
                "status": "completed",
                "stage": "done",
                "score": verdict.get("score"),
                **artifacts,
            },
        )
        return []
    revisions = verdict.get("revision_tasks") or []
    if round_ >= MAX_REVISION_ROUNDS or not revisions:
        reason = verdict.get("summary") or "the review did not approve the environment"
        _finish(
            connection,
            root,
            state,
            "failed",
            f"rejected after {round_} revision round(s): {reason}",
            exclude=review.id,
        )
        return []
    created = [
        create_task(
            connection,
            root,
            child["agent_type"],
            child["input"],
            role="artifact",
            round_=round_ + 1,
        )
        for child in revisions
    ]
    _save_state(
        connection,
        root["id"],
        {
            **state,
            "stage": "revising",
            "round": round_ + 1,
            "revising": [c["agent_type"] for c in revisions],
        },
    )
    return created


def end_task(connection: Connection, task: TaskRow, status: str, details: dict[str, Any]) -> None:
    """End ``task`` ``failed`` or ``cancelled``; a task of a workflow ends the workflow too.

    The root is locked before the task's row (the lock order above).
    """
    in_workflow = involved(task)
    if in_workflow:
        lock_root(connection, task.workflow_id)
    lifecycle.finish_unsuccessfully(connection, task.id, status, details)
    if in_workflow:
        on_ended_unsuccessfully(connection, task, status, details["message"])


def on_ended_unsuccessfully(
    connection: Connection, task: TaskRow, status: str, reason: str
) -> None:
    """A task of the workflow failed for good or was cancelled: the workflow ends too."""
    root = lock_root(connection, task.workflow_id)
    if root is None:
        return
    state = _state(root)
    if state.get("status") in {"completed", "failed", "cancelled"}:
        return
    _finish(
        connection,
        root,
        state,
        status,
        f"{task.agent_type} task {status}: {reason}",
        exclude=task.id,
    )


def cancel(connection: Connection, root_id: uuid.UUID) -> bool:
    """Cancel a whole workflow; False if it had already ended."""
    root = lock_root(connection, root_id)
    if root is None:
        return False
    state = _state(root)
    if state.get("status") in {"completed", "failed", "cancelled"}:
        return False
    _finish(connection, root, state, "cancelled", "cancelled by a user", exclude=None)
    return True


def _finish(
    connection: Connection,
    root: dict[str, Any],
    state: dict[str, Any],
    status: str,
    reason: str,
    *,
    exclude: uuid.UUID | None,
) -> None:
    """End the workflow: stop its waiting tasks, ask running ones to stop, record why."""
    params = {"root": root["id"], "exclude": exclude, "reason": f"workflow {status}: {reason}"}
    connection.execute(
        text(
            "UPDATE agent_tasks SET status = 'cancelled', completed_at = now(),"
            " cancel_requested_at = now(), error_message = :reason"
            " WHERE workflow_id = :root AND status IN ('pending', 'queued', 'retrying')"
            " AND id IS DISTINCT FROM :exclude"
        ),
        params,
    )
    connection.execute(
        text(
            "UPDATE agent_tasks SET cancel_requested_at = coalesce(cancel_requested_at, now())"
            " WHERE workflow_id = :root AND status = 'running' AND id IS DISTINCT FROM :exclude"
        ),
        params,
    )
    _save_state(
        connection, root["id"], {**state, "status": status, "stage": "done", "error": reason}
    )
