"""Read models of agent tasks for the Python API and the CLI (pydantic, JSON-ready)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, text


class StateView(BaseModel):
    model_config = ConfigDict(frozen=True)

    state_type: str
    sequence_number: int
    quality_score: float | None
    confidence_score: float | None
    approved: bool
    state_data: dict[str, Any]
    created_at: dt.datetime


class TaskView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    agent_type: str
    task_name: str
    status: str
    priority: int
    progress_percentage: int
    retry_count: int
    delivery_count: int
    workflow_id: uuid.UUID | None
    parent_task_id: uuid.UUID | None
    idempotency_key: str | None
    created_at: dt.datetime
    assigned_at: dt.datetime | None
    started_at: dt.datetime | None
    completed_at: dt.datetime | None
    duration_seconds: int | None
    cancel_requested_at: dt.datetime | None
    error_message: str | None
    error_details: dict[str, Any] | None
    output_data: dict[str, Any] | None
    intermediate_results: dict[str, Any] | None
    context_data: dict[str, Any] | None = None
    states: list[StateView] = []

    @property
    def finished(self) -> bool:
        return self.status in {"completed", "failed", "cancelled"}


_SELECT = (
    "SELECT t.id, a.agent_type, t.task_name, t.status, t.priority, t.progress_percentage,"
    " t.retry_count, t.delivery_count, t.workflow_id, t.parent_task_id, t.idempotency_key,"
    " t.created_at, t.assigned_at, t.started_at, t.completed_at, t.duration_seconds,"
    " t.cancel_requested_at, t.error_message, t.error_details, t.output_data,"
    " t.intermediate_results, t.context_data"
    " FROM agent_tasks t JOIN ai_agents a ON a.id = t.agent_id"
)


def load_task(
    connection: Connection, task_id: uuid.UUID, *, states: bool = True
) -> TaskView | None:
    row = connection.execute(text(_SELECT + " WHERE t.id = :id"), {"id": task_id}).mappings()
    found = row.one_or_none()
    if found is None:
        return None
    view = TaskView.model_validate(dict(found))
    if not states:
        return view
    rows = connection.execute(
        text(
            "SELECT state_type, sequence_number, quality_score, confidence_score, approved,"
            " state_data, created_at FROM agent_states WHERE task_id = :id ORDER BY sequence_number"
        ),
        {"id": task_id},
    ).mappings()
    return view.model_copy(update={"states": [StateView.model_validate(dict(r)) for r in rows]})


def query_tasks(
    connection: Connection,
    *,
    status: str | None = None,
    agent_type: str | None = None,
    workflow_id: uuid.UUID | None = None,
    limit: int = 50,
) -> list[TaskView]:
    clauses: list[str] = []
    params: dict[str, Any] = {"limit": limit}
    if status:
        clauses.append("t.status = :status")
        params["status"] = status
    if agent_type:
        clauses.append("a.agent_type = :agent_type")
        params["agent_type"] = agent_type
    if workflow_id:
        clauses.append("coalesce(t.workflow_id, t.id) = :workflow_id")
        params["workflow_id"] = workflow_id
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = connection.execute(
        text(_SELECT + where + " ORDER BY t.created_at DESC LIMIT :limit"), params
    ).mappings()
    return [TaskView.model_validate(dict(row)) for row in rows]
