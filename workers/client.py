"""The Python API services use to hand the worker agent tasks.

    from workers import client
    task_id = client.submit("content", {...}, idempotency_key="lesson-42")
    view = client.wait(task_id, timeout=60)

``submit`` writes the ``agent_tasks`` row (in the caller's transaction when a
``session`` is passed) and sends the message only after that transaction
commits.  Invalid payloads, unknown or inactive agents raise before anything
is written.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, bindparam, event, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Session

from agents.registry import get_kind
from models.errors import (
    AgentUnavailable,
    ConfigurationError,
    NotFound,
    ValidationFailed,
    WaitTimeout,
)
from workers import dispatch as dispatcher
from workers.celeryconfig import MAX_TIMEOUT_SECONDS
from workers.db import get_engine
from workers.views import TaskView, load_task, query_tasks

_PENDING = "toolbox_pending_dispatch"


@dataclass(frozen=True)
class SubmitOptions:
    priority: int | None = None
    idempotency_key: str | None = None
    parent_task_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
    task_name: str | None = None


_INSERT = text(
    "INSERT INTO agent_tasks (id, agent_id, parent_task_id, workflow_id, task_type, task_name,"
    " input_data, status, priority, created_by, idempotency_key)"
    " VALUES (:id, :agent_id, :parent_task_id, :workflow_id, :task_type, :task_name,"
    " :input_data, 'pending', :priority, :created_by, :idempotency_key)"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
).bindparams(bindparam("input_data", type_=JSONB))


def _agent(connection: Connection, agent: str | uuid.UUID) -> dict[str, Any]:
    column = "id" if isinstance(agent, uuid.UUID) else "agent_type"
    rows = connection.execute(
        text(
            "SELECT id, agent_type, name, priority, is_active, timeout_seconds FROM ai_agents"
            f" WHERE {column} = :agent ORDER BY is_active DESC, name LIMIT 1"
        ),
        {"agent": agent},
    ).mappings()
    row = rows.one_or_none()
    if row is None:
        raise AgentUnavailable(f"unknown agent {str(agent)!r}")
    if not row["is_active"]:
        raise AgentUnavailable(f"agent {row['name']!r} is inactive")
    if row["timeout_seconds"] > MAX_TIMEOUT_SECONDS:
        raise ConfigurationError(
            f"agent {row['name']!r} has timeout_seconds {row['timeout_seconds']} above the "
            f"supported maximum {MAX_TIMEOUT_SECONDS} (the broker's visibility timeout)"
        )
    return dict(row)


def validate_input(agent_type: str, input_data: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    kind = get_kind(agent_type)
    raw = input_data.model_dump(mode="json") if isinstance(input_data, BaseModel) else input_data
    try:
        return kind.input_schema.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        errors = [
            f"{'.'.join(str(p) for p in err['loc']) or 'input'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ValidationFailed(
            f"invalid input for agent {agent_type!r}: " + "; ".join(errors), errors=errors
        ) from None


def _insert(
    connection: Connection,
    agent: str | uuid.UUID,
    inputs: Sequence[Mapping[str, Any] | BaseModel],
    options: SubmitOptions,
) -> tuple[list[uuid.UUID], list[dispatcher.Envelope]]:
    """Insert rows; return (all task ids, ids that are new and need a message)."""
    priority, idempotency_key = options.priority, options.idempotency_key
    parent_task_id, workflow_id = options.parent_task_id, options.workflow_id
    row = _agent(connection, agent)
    if priority is not None and not 0 <= priority <= 9:
        raise ValidationFailed(errors=[f"priority: must be between 0 and 9, got {priority}"])
    if idempotency_key is not None and len(inputs) != 1:
        raise ValidationFailed(errors=["idempotency_key: only for a single task"])
    payloads = [validate_input(row["agent_type"], item) for item in inputs]
    if parent_task_id is not None and workflow_id is None:
        workflow_id = connection.execute(
            text("SELECT coalesce(workflow_id, id) FROM agent_tasks WHERE id = :id"),
            {"id": parent_task_id},
        ).scalar_one_or_none()
        if workflow_id is None:
            raise NotFound(f"parent task {parent_task_id} does not exist")
    ids: list[uuid.UUID] = []
    new: list[dispatcher.Envelope] = []
    for payload in payloads:
        task_id = uuid.uuid4()
        values = {
            "id": task_id,
            "agent_id": row["id"],
            "parent_task_id": parent_task_id,
            "workflow_id": workflow_id or task_id,
            "task_type": row["agent_type"],
            "task_name": options.task_name or f"{row['agent_type']} task",
            "input_data": payload,
            "priority": row["priority"] if priority is None else priority,
            "created_by": options.created_by,
            "idempotency_key": idempotency_key,
        }
        inserted = connection.execute(_INSERT, values).scalar_one_or_none()
        if inserted is None:
            existing = connection.execute(
                text("SELECT id FROM agent_tasks WHERE idempotency_key = :key"),
                {"key": idempotency_key},
            ).scalar_one()
            ids.append(existing)
        else:
            ids.append(task_id)
            new.append(
                dispatcher.Envelope(
                    task_id,
                    values["priority"],
                    row["timeout_seconds"],
                    row["agent_type"],
                    values["workflow_id"],
                )
            )
    return ids, new


def _dispatch_after_commit(session: Session, ids: list[uuid.UUID]) -> None:
    """Send after the session's transaction commits.

    Ids of rows a rollback removed are simply not found at dispatch time
    (the envelope query reads committed rows only), so nothing is sent for them.
    """
    pending: list[uuid.UUID] = session.info.setdefault(_PENDING, [])
    if not pending:
        bind = session.get_bind()

        def after_commit(committed: Session) -> None:
            todo = list(committed.info.pop(_PENDING, []))
            if todo:
                with bind.engine.begin() as connection:
                    dispatcher.dispatch(connection, todo)

        event.listen(session, "after_commit", after_commit, once=True)
    pending.extend(ids)


def submit_many(
    agent: str | uuid.UUID,
    inputs: Sequence[Mapping[str, Any] | BaseModel],
    *,
    priority: int | None = None,
    idempotency_key: str | None = None,
    parent_task_id: uuid.UUID | None = None,
    workflow_id: uuid.UUID | None = None,
    created_by: uuid.UUID | None = None,
    task_name: str | None = None,
    session: Session | None = None,
) -> list[uuid.UUID]:
    """Submit several tasks for one agent in one transaction; returns their ids."""
    options = SubmitOptions(
        priority=priority,
        idempotency_key=idempotency_key,
        parent_task_id=parent_task_id,
        workflow_id=workflow_id,
        created_by=created_by,
        task_name=task_name,
    )
    if session is not None:
        ids, new = _insert(session.connection(), agent, inputs, options)
        _dispatch_after_commit(session, [envelope.task_id for envelope in new])
        return ids
    with get_engine().connect() as connection:  # one checkout (and pre-ping) for both steps
        with connection.begin():
            ids, new = _insert(connection, agent, inputs, options)
        sent = dispatcher.send(new)
        if sent:
            connection.execution_options(isolation_level="AUTOCOMMIT")
            dispatcher.mark_dispatched(connection, sent)
    return ids


def submit(
    agent: str | uuid.UUID,
    input_data: Mapping[str, Any] | BaseModel,
    *,
    priority: int | None = None,
    idempotency_key: str | None = None,
    parent_task_id: uuid.UUID | None = None,
    workflow_id: uuid.UUID | None = None,
    created_by: uuid.UUID | None = None,
    task_name: str | None = None,
    session: Session | None = None,
) -> uuid.UUID:
    """Submit one agent task; the same ``idempotency_key`` returns the first task's id."""
    return submit_many(
        agent,
        [input_data],
        priority=priority,
        idempotency_key=idempotency_key,
        parent_task_id=parent_task_id,
        workflow_id=workflow_id,
        created_by=created_by,
        task_name=task_name,
        session=session,
    )[0]


def get_task(task_id: uuid.UUID, *, states: bool = True) -> TaskView:
    with get_engine().connect() as connection:
        view = load_task(connection, task_id, states=states)
    if view is None:
        raise NotFound(f"no agent task {task_id}")
    return view


def list_tasks(
    *,
    status: str | None = None,
    agent_type: str | None = None,
    workflow_id: uuid.UUID | None = None,
    limit: int = 50,
) -> list[TaskView]:
    with get_engine().connect() as connection:
        return query_tasks(
            connection, status=status, agent_type=agent_type, workflow_id=workflow_id, limit=limit
        )


def cancel(task_id: uuid.UUID) -> TaskView:
    """Cancel a waiting task at once, or ask a running one to stop at its next phase."""
    with get_engine().begin() as connection:
        status = connection.execute(
            text("SELECT status FROM agent_tasks WHERE id = :id FOR UPDATE"), {"id": task_id}
        ).scalar_one_or_none()
        if status is None:
            raise NotFound(f"no agent task {task_id}")
        if status in {"pending", "queued", "retrying"}:
            connection.execute(
                text(
                    "UPDATE agent_tasks SET status = 'cancelled', completed_at = now(),"
                    " cancel_requested_at = now(), error_message = 'cancelled before it started'"
                    " WHERE id = :id"
                ),
                {"id": task_id},
            )
        elif status == "running":
            connection.execute(
                text(
                    "UPDATE agent_tasks SET cancel_requested_at = coalesce(cancel_requested_at,"
                    " now()) WHERE id = :id"
                ),
                {"id": task_id},
            )
    return get_task(task_id)


def wait(task_id: uuid.UUID, timeout: float = 60.0, *, poll: float = 0.05) -> TaskView:
    """Block until the task finishes; raise ``WaitTimeout`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        view = get_task(task_id, states=False)
        if view.finished:
            return get_task(task_id)
        if time.monotonic() >= deadline:
            raise WaitTimeout(
                f"task {task_id} still {view.status} after {timeout:g}s "
                f"({view.progress_percentage}% done)"
            )
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))
        poll = min(poll * 1.5, 1.0)
