"""``toolbox.agent.run``: the Celery side of an agent task (it only carries an id)."""

from __future__ import annotations

import json
import logging
import uuid

from celery import Task
from celery.exceptions import Reject

from workers.app import app
from workers.logs import task_context
from workers.runtime import get_runner, retry_not_sent

log = logging.getLogger(__name__)


@app.task(
    name="toolbox.agent.run",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=None,
    ignore_result=True,
)
def run_agent_task(self: Task, task_id: str) -> None:
    """Run agent task ``task_id`` (a row of ``agent_tasks``) through its SPARC phases."""
    try:
        row_id = uuid.UUID(str(task_id))
    except ValueError:
        log.error("toolbox.agent.run needs an agent_tasks id, got %s", json.dumps(task_id)[:80])
        return
    token = task_context.set({"task_id": str(row_id)})
    try:
        decision = get_runner(self.request.hostname or "worker").execute(row_id)
    finally:
        task_context.reset(token)
    if decision.action == "retry":
        # Celery's retry message drops argsrepr: keep what Flower shows (ids, never payloads).
        try:
            raise self.retry(
                countdown=decision.countdown,
                max_retries=None,
                argsrepr=getattr(self.request, "argsrepr", None) or f"task_id={row_id}",
                kwargsrepr="{}",
            )
        except Reject as rejected:  # the retry's message did not go out: the relay sends it
            retry_not_sent(row_id, rejected.reason)
            raise
