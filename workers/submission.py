"""Writing ``agent_tasks`` rows for ``workers.client``: checks, then the insert.

Two ways in.  ``insert_rows`` runs inside a transaction (the caller's
session, or one of its own) and checks step by step: agent, options,
payloads, parent.  Its rows are ``pending`` until their message is sent and
marked.  ``insert_direct`` is the common case of a service submitting by
agent type on its own: the agent lookup is folded into one INSERT that
commits by itself (two round trips fewer than BEGIN, lookup, INSERT,
COMMIT).  It inserts everything or nothing; whenever it cannot (any check
failing, an idempotency key already used) the caller falls back to
``insert_rows``, which raises the precise error or finds the first task.

``insert_direct`` writes its rows already ``queued`` (``dispatched_at``
set), because their messages leave right after it: the caller sends them
and puts back to ``pending`` only the ones the broker refused
(``dispatch.unmark``), which saves every submit the marking UPDATE.  A
process killed between the commit and the send leaves a queued row without
a message, the same state as a message Redis lost: the relay re-sends it
after ``TOOLBOX_REDISPATCH_AFTER_SECONDS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from agents.registry import get_kind
from models.errors import AgentUnavailable, ConfigurationError, NotFound, ValidationFailed
from workers import dispatch as dispatcher
from workers.celeryconfig import MAX_TIMEOUT_SECONDS


@dataclass(frozen=True)
class SubmitOptions:
    priority: int | None = None
    idempotency_key: str | None = None
    parent_task_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
    task_name: str | None = None


Inserted = tuple[list[uuid.UUID], list[dispatcher.Envelope]]
"""All task ids in input order, and envelopes for the rows that are new."""

_INSERT = text(
    "INSERT INTO agent_tasks (id, agent_id, parent_task_id, workflow_id, task_type, task_name,"
    " input_data, status, priority, created_by, idempotency_key)"
    " VALUES (:id, :agent_id, :parent_task_id, :workflow_id, :task_type, :task_name,"
    " :input_data, 'pending', :priority, :created_by, :idempotency_key)"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
).bindparams(bindparam("input_data", type_=JSONB))

_AGENT_ORDER = "ORDER BY is_active DESC, name LIMIT 1"
"""Which ``ai_agents`` row an agent type means: the first active one by name."""

_INSERT_DIRECT = text(
    "WITH agent AS (SELECT id, agent_type, priority, is_active, timeout_seconds FROM ai_agents"
    f" WHERE agent_type = :agent {_AGENT_ORDER}),"
    " inserted AS (INSERT INTO agent_tasks (id, agent_id, workflow_id, task_type, task_name,"
    " input_data, status, dispatched_at, priority, created_by, idempotency_key)"
    " SELECT r.id, a.id, coalesce(CAST(:workflow_id AS uuid), r.id), a.agent_type, :task_name,"
    " r.input_data, 'queued', now(), coalesce(CAST(:priority AS int), a.priority), :created_by,"
    " :idempotency_key FROM agent a, jsonb_to_recordset(:rows) AS r(id uuid, input_data jsonb)"
    " WHERE a.is_active AND a.timeout_seconds <= :max_timeout"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, priority, workflow_id)"
    " SELECT i.id, i.priority, i.workflow_id, a.timeout_seconds FROM inserted i, agent a"
).bindparams(bindparam("rows", type_=JSONB))


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


def insert_direct(
    connection: Connection,
    agent: str | uuid.UUID,
    inputs: Sequence[Mapping[str, Any] | BaseModel],
    options: SubmitOptions,
) -> Inserted | None:
    """One self-committing INSERT of ``queued`` rows on an autocommit ``connection``.

    None: nothing was written, use ``insert_rows``.
    """
    if isinstance(agent, uuid.UUID) or options.parent_task_id is not None or not inputs:
        return None
    if _option_error(options, len(inputs)) is not None:
        return None
    try:
        payloads = [validate_input(agent, item) for item in inputs]
    except (AgentUnavailable, ValidationFailed):
        return None
    ids = [uuid.uuid4() for _ in payloads]
    rows = connection.execute(
        _INSERT_DIRECT,
        {
            "agent": agent,
            "rows": [
                {"id": str(task_id), "input_data": payload}
                for task_id, payload in zip(ids, payloads, strict=True)
            ],
            "workflow_id": options.workflow_id,
            "task_name": options.task_name or f"{agent} task",
            "priority": options.priority,
            "created_by": options.created_by,
            "idempotency_key": options.idempotency_key,
            "max_timeout": MAX_TIMEOUT_SECONDS,
        },
    ).all()
    if not rows:  # no usable agent, or the idempotency key is taken: nothing was written
        return None
    by_id = {row.id: row for row in rows}
    envelopes = []
    for task_id in ids:  # in input order, whatever order RETURNING gave
        row = by_id[task_id]
        envelopes.append(
            dispatcher.Envelope(task_id, row.priority, row.timeout_seconds, agent, row.workflow_id)
        )
    return ids, envelopes


def _option_error(options: SubmitOptions, count: int) -> str | None:
    """What is wrong with the options of a submit of ``count`` tasks, if anything."""
    if options.priority is not None and not 0 <= options.priority <= 9:
        return f"priority: must be between 0 and 9, got {options.priority}"
    if options.idempotency_key is not None and count != 1:
        return "idempotency_key: only for a single task"
    return None


def _agent(connection: Connection, agent: str | uuid.UUID) -> dict[str, Any]:
    column = "id" if isinstance(agent, uuid.UUID) else "agent_type"
    rows = connection.execute(
        text(
            "SELECT id, agent_type, name, priority, is_active, timeout_seconds FROM ai_agents"
            f" WHERE {column} = :agent {_AGENT_ORDER}"
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


def insert_rows(
    connection: Connection,
    agent: str | uuid.UUID,
    inputs: Sequence[Mapping[str, Any] | BaseModel],
    options: SubmitOptions,
) -> Inserted:
    """Insert rows inside the connection's transaction, checking each step."""
    priority, idempotency_key = options.priority, options.idempotency_key
    parent_task_id, workflow_id = options.parent_task_id, options.workflow_id
    row = _agent(connection, agent)
    problem = _option_error(options, len(inputs))
    if problem is not None:
        raise ValidationFailed(errors=[problem])
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
