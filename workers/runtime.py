"""Per-process objects of a worker: the SPARC runner and its collaborators."""

from __future__ import annotations

import json
import logging
import os
import uuid
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from langchain_core.language_models import BaseChatModel
from sqlalchemy.exc import SQLAlchemyError

from agents.engine import Runner, TaskFailure
from workers.db import get_engine
from workers.dispatch import dispatch, retry_unsent
from workers.redis import get_redis, progress_channel
from workers.settings import get_settings

log = logging.getLogger(__name__)
_runners: dict[tuple[int, str], Runner] = {}


def publish_progress(workflow_id: uuid.UUID, event: dict[str, Any]) -> None:
    """Best effort: a dashboard missing one event must not fail the task."""
    try:
        get_redis().publish(progress_channel(workflow_id), json.dumps(event))
    except Exception as exc:
        log.debug("progress event not published: %s", type(exc).__name__)


def dispatch_tasks(task_ids: list[uuid.UUID]) -> None:
    with get_engine().begin() as connection:
        dispatch(connection, task_ids, fresh=True)  # a workflow step's new tasks


def retry_not_sent(task_id: uuid.UUID, error: object) -> None:
    """The broker refused a retry's message: leave the row to the relay, with one log line.

    Marked, the retry is sent by the relay once its ``not_before`` has passed;
    if the database is away too, the lost-message path sends it
    ``TOOLBOX_REDISPATCH_AFTER_SECONDS`` after that.  Never raises: the
    row, not this delivery, carries the task.
    """
    reason = type(error).__name__
    try:
        with get_engine().begin() as connection:
            marked = retry_unsent(connection, task_id)
    except SQLAlchemyError as exc:
        log.warning(
            "retry of agent task %s not sent (%s) nor recorded (database: %s);"
            " the relay sends it %d s after it is due",
            task_id, reason, type(exc).__name__, get_settings().redispatch_after_seconds,
        )  # fmt: skip
        return
    log.warning(
        "retry of agent task %s not sent (%s); %s",
        task_id,
        reason,
        "the relay sends it once it is due" if marked else "the task moved on meanwhile",
    )


def report_failure(failure: TaskFailure) -> None:
    from workers.jobs.errors import record_task_failure

    record_task_failure(get_engine(), failure)


def chat_model(agent_type: str) -> BaseChatModel:
    from agents.providers import make_chat_model

    return make_chat_model(get_settings().model_for(agent_type))


def get_runner(hostname: str) -> Runner:
    key = (os.getpid(), hostname)
    runner = _runners.get(key)
    if runner is None:
        runner = Runner(
            get_engine(),
            hostname=hostname,
            max_deliveries=get_settings().max_deliveries,
            publish=publish_progress,
            model_factory=chat_model,
            timeout_errors=(SoftTimeLimitExceeded,),
            report_error=report_failure,
            dispatch=dispatch_tasks,
        )
        _runners.clear()
        _runners[key] = runner
    return runner
