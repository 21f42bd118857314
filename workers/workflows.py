"""The Python API for whole learning-environment workflows.

    from workers import workflows
    workflow_id = workflows.generate({"subject": "science", "grade_level": 6,
                                      "topic": "volcanoes"})
    view = workflows.wait(workflow_id, timeout=120)
    view.artifacts["content_id"]

A workflow is its supervisor task (``workflow_id`` = that task's id) plus the
child tasks it fans out to; see ``agents.workflow`` for how it moves on.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict
from sqlalchemy.orm import Session

from agents import workflow as flow
from agents.schemas import EnvironmentRequest
from models.errors import NotFound, WaitTimeout
from models.ids import parse_id
from workers import client
from workers.db import get_engine
from workers.views import TaskView, load_task, query_tasks
from workers.waiting import check_wait

TERMINAL = frozenset({"completed", "failed", "cancelled"})
NOT_STARTED = frozenset({"pending", "queued"})
"""Statuses of the root (supervisor) task that make a workflow ``pending``: not started."""
ARTIFACT_KEYS = ("content_id", "quiz_id", "terrain_id", "script_ids", "objective_ids")
TASK_NAME = "learning environment workflow"


class WorkflowView(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    status: str
    stage: str
    round: int
    error: str | None
    score: float | None
    artifacts: dict[str, Any]
    progress_percentage: int
    created_at: dt.datetime
    tasks: list[TaskView]

    @property
    def finished(self) -> bool:
        """The outcome is decided and final (it may still have tasks stopping: ``settled``)."""
        return self.status in TERMINAL

    @property
    def settled(self) -> bool:
        """Finished, and every task has stopped too.

        A workflow ends as soon as one of its tasks fails for good or is
        cancelled; its other running tasks stop at their next phase boundary
        (one in its last phase completes), and none of them stores anything.
        """
        return self.finished and all(task.finished for task in self.tasks)

    @property
    def summary(self) -> str:
        """Status and how far it got: ``running (building, round 0, 40%)``.

        ``pending (not started)`` while its supervisor task waits for a worker.
        """
        if self.status == "pending":
            return "pending (not started)"
        return f"{self.status} ({self.stage}, round {self.round}, {self.progress_percentage}%)"


def generate(
    request: EnvironmentRequest | Mapping[str, Any],
    *,
    created_by: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    priority: int | None = None,
    session: Session | None = None,
) -> uuid.UUID:
    """Start a workflow for a teacher's request; returns the workflow id at once.

    An invalid request raises ``ValidationFailed`` listing the bad fields and
    writes nothing.
    """
    return client.submit(
        flow.ROOT_AGENT,
        request,
        created_by=created_by,
        idempotency_key=idempotency_key,
        priority=priority,
        task_name=TASK_NAME,
        session=session,
    )


def generate_and_report(
    request: EnvironmentRequest | Mapping[str, Any],
    *,
    created_by: uuid.UUID | None = None,
    idempotency_key: str | None = None,
    priority: int | None = None,
) -> client.Submitted:
    """``generate`` that also says whether the broker took the message (``client.Submitted``).

    ``task_id`` is the workflow id.
    """
    return client.submit_and_report(
        flow.ROOT_AGENT,
        request,
        created_by=created_by,
        idempotency_key=idempotency_key,
        priority=priority,
        task_name=TASK_NAME,
    )


def get(workflow_id: uuid.UUID | str) -> WorkflowView:
    """The workflow; ``NotFound`` if there is none, ``ValidationFailed`` if the id is no UUID."""
    workflow_id = parse_id(workflow_id, noun="workflow", field="workflow_id")
    with get_engine().connect() as connection:
        root = load_task(connection, workflow_id, states=False)
        if root is None or root.agent_type != flow.ROOT_AGENT:
            raise NotFound(f"no workflow {workflow_id}")
        tasks = query_tasks(connection, workflow_id=workflow_id, limit=1000)
    state = dict((root.context_data or {}).get("workflow", {}))
    status = str(state.get("status", "running"))
    if root.status in {"failed", "cancelled"} and status not in TERMINAL:
        status = root.status
    elif root.status in NOT_STARTED:
        status = "pending"
    tasks = sorted(tasks, key=lambda t: t.created_at)
    done = sum(1 for t in tasks if t.status == "completed")
    expected = max(len(tasks), 1 + len(state.get("needs", [])) + 1)
    return WorkflowView(
        id=workflow_id,
        status=status,
        stage=str(state.get("stage", "planning")),
        round=int(state.get("round", 0)),
        error=state.get("error") or (root.error_message if status in {"failed"} else None),
        score=state.get("score"),
        artifacts={key: state[key] for key in ARTIFACT_KEYS if key in state},
        progress_percentage=100 if status == "completed" else min(99, done * 100 // expected),
        created_at=root.created_at,
        tasks=tasks,
    )


def wait(
    workflow_id: uuid.UUID | str, timeout: float = 300.0, *, poll: float = 0.1
) -> WorkflowView:
    """Block until the workflow ends; ``WaitTimeout`` after ``timeout`` seconds.

    It returns as soon as the outcome is decided: after a failure or a cancel,
    tasks still running may stop a moment later (``WorkflowView.settled``).
    """
    workflow_id = parse_id(workflow_id, noun="workflow", field="workflow_id")
    timeout, poll = check_wait(timeout, poll)
    deadline = time.monotonic() + timeout
    while True:
        view = get(workflow_id)
        if view.finished:
            return view
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"workflow {workflow_id} still {view.summary} after {timeout:g}s")
        time.sleep(min(poll, max(0.0, deadline - time.monotonic())))


def cancel(workflow_id: uuid.UUID) -> WorkflowView:
    """Cancel every task of the workflow that has not finished."""
    get(workflow_id)
    with get_engine().begin() as connection:
        flow.cancel(connection, workflow_id)
    return get(workflow_id)
