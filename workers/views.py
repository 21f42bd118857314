"""Read models of agent tasks for the Python API and the CLI (pydantic, JSON-ready).

``query_tasks`` checks its filters for both (``check_status``, ``check_limit``,
an unknown agent type), so ``client.list_tasks`` and ``toolbox task list``
refuse the same things in the same words.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Connection, text

from agents.base import PHASES
from agents.field_paths import unstorable_text
from models.agents import TASK_STATUSES
from models.errors import ValidationFailed, quoted, shown
from models.ids import parse_id

MAX_LIST_LIMIT = 1000


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
    states: list[StateView] | None = None
    """The SPARC states in order; None when not loaded (``list_tasks`` does not load them)."""

    @property
    def finished(self) -> bool:
        return self.status in {"completed", "failed", "cancelled"}

    @property
    def in_last_phase(self) -> bool:
        """Running its last phase, which a cancel can no longer stop: the task completes.

        A runner looks for a cancel request at each phase boundary but the
        last, and writes each phase to ``states`` as it ends: every phase but
        the last written means the last one runs.  False for a view loaded
        without its states.
        """
        ended = {state.state_type for state in self.states or ()}
        return self.status == "running" and ended >= _BEFORE_LAST


_BEFORE_LAST = frozenset(phase.value for phase in PHASES[:-1])


class CancelView(TaskView):
    """The task after ``client.cancel``, and what the cancel found."""

    status_before: str
    """The status the cancel found; ``completed`` or ``failed``: nothing was cancelled."""
    running_workflow_id: uuid.UUID | None = None
    """The task's workflow, when the task had already finished and the workflow goes on:
    ``workflows.cancel`` (``toolbox workflow cancel``) stops it."""
    orphaned: bool = False
    """The task was ``running`` but no worker held it (its worker was stopped or died),
    so it was cancelled at once instead of asked to stop."""


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


def check_status(status: object) -> str | None:
    """``status`` lower-cased, or ``ValidationFailed`` listing the valid ones (None: no filter)."""
    if status is None:
        return None
    if not isinstance(status, str) or status.lower() not in TASK_STATUSES:
        shown = quoted(status) if isinstance(status, str) else f"of type {type(status).__name__}"
        raise ValidationFailed(
            f"unknown status {shown}; valid: {', '.join(TASK_STATUSES)}",
            errors=["status: not a task status"],
        )
    return status.lower()


def check_limit(limit: object) -> int:
    """``limit`` if it is an integer from 1 to ``MAX_LIST_LIMIT``, else ``ValidationFailed``."""
    if not isinstance(limit, int) or isinstance(limit, bool):
        problem = f"limit: must be an integer from 1 to {MAX_LIST_LIMIT}"
        raise ValidationFailed(problem, errors=[problem])
    if not 1 <= limit <= MAX_LIST_LIMIT:
        problem = f"limit: must be from 1 to {MAX_LIST_LIMIT}, got {shown(limit)}"
        raise ValidationFailed(problem, errors=[problem])
    return limit


def check_agent_type(connection: Connection, agent_type: str) -> None:
    """``ValidationFailed`` listing the known agent types when ``agent_type`` is none of them."""
    known = list(
        connection.execute(
            text("SELECT DISTINCT agent_type FROM ai_agents ORDER BY agent_type")
        ).scalars()
    )
    if agent_type not in known:
        raise ValidationFailed(
            unknown_agent_type(agent_type, known), errors=["agent_type: not an agent type"]
        )


def unknown_agent_type(agent_type: str, known: list[str]) -> str:
    """The refusal of an agent type that is not there, naming the known ones; with
    none at all, what to do (``alembic upgrade head`` makes the schema, not the agents)."""
    if not known:
        return f"unknown agent {quoted(agent_type)}; no agents are registered: run toolbox migrate"
    return f"unknown agent {quoted(agent_type)}; known: {', '.join(known)}"


def query_tasks(
    connection: Connection,
    *,
    status: str | None = None,
    agent_type: str | None = None,
    workflow_id: uuid.UUID | str | None = None,
    limit: int = 50,
) -> list[TaskView]:
    """The newest tasks matching the filters; a bad filter is ``ValidationFailed``.

    An unknown agent type is found out only when nothing matched, so a
    listing costs no extra query.
    """
    status = check_status(status)
    params: dict[str, Any] = {"limit": check_limit(limit)}
    if agent_type is not None and not isinstance(agent_type, str):
        raise ValidationFailed("agent_type: must be a string", errors=["agent_type: not a string"])
    clauses: list[str] = []
    if status is not None:
        clauses.append("t.status = :status")
        params["status"] = status
    if agent_type is not None:
        if unstorable_text(agent_type):  # no agent type is such text: say which there are
            check_agent_type(connection, agent_type)
        clauses.append("a.agent_type = :agent_type")
        params["agent_type"] = agent_type
    if workflow_id is not None:
        clauses.append("coalesce(t.workflow_id, t.id) = :workflow_id")
        params["workflow_id"] = parse_id(workflow_id, noun="workflow", field="workflow_id")
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    rows = connection.execute(
        text(_SELECT + where + " ORDER BY t.created_at DESC LIMIT :limit"), params
    ).mappings()
    views = [TaskView.model_validate(dict(row)) for row in rows]
    if not views and agent_type is not None:
        check_agent_type(connection, agent_type)
    return views
