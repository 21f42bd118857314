"""The Python API services use to hand the worker agent tasks.

    from workers import client
    task_id = client.submit("content", {...}, idempotency_key="lesson-42")
    view = client.wait(task_id, timeout=60)

``submit`` writes the ``agent_tasks`` row (in the caller's transaction when a
``session`` is passed) and sends the message only after that transaction
commits.  Invalid payloads or options, unknown or inactive agents, unknown
users or parents and a reused idempotency key of another request raise
(``ValidationFailed``, ``NotFound``, ...) before anything is written.  A
broker that is down is not an error: the row stays ``pending`` and the
relay sends it later; ``submit_and_report`` says when that happened (the
command line tells the user).  A Redis that answers but refuses the
settings of ``TOOLBOX_REDIS_URL`` (a database number out of range, a wrong
password or user) will not come back by itself: ``submit`` on its own
removes the rows it has just written and raises ``ConfigurationError``
naming the setting, so nothing is left waiting for a broker that never
takes it.  This costs nothing until a send fails.  In a caller's
``session`` the rows are committed by then and stay ``pending`` until the
setting is fixed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Connection, event
from sqlalchemy.orm import Session, scoped_session

from agents import cancel as cancelling
from agents.workflow import ROOT_AGENT
from models.errors import ConfigurationError, NotFound, ValidationFailed, WaitTimeout
from models.ids import kind_of, parse_id
from workers import dispatch as dispatcher
from workers.db import get_engine
from workers.redis import refusal, refused_message
from workers.submission import SubmitOptions, insert_direct, insert_rows
from workers.views import CancelView, TaskView, load_task, query_tasks
from workers.waiting import check_wait

_PENDING = "toolbox_pending_dispatch"


@dataclass(frozen=True)
class Submitted:
    """A task ``submit_and_report`` saved, and whether its message reached the broker.

    ``broker_error`` is the error with which the broker refused the message
    (Redis down, most likely).  The task is saved all the same, ``pending``,
    and the relay (beat) sends it once the broker is back: news for whoever
    waits on it, not a failure.  None when the message went out, or when a
    reused idempotency key returned an earlier task (nothing was sent).
    """

    task_id: uuid.UUID
    broker_error: Exception | None = None


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
                    dispatcher.dispatch(connection, todo, fresh=True)

        event.listen(session, "after_commit", after_commit, once=True)
    pending.extend(ids)


def submit_many(
    agent: str | uuid.UUID,
    inputs: Iterable[Mapping[str, Any] | BaseModel],
    *,
    priority: int | None = None,
    idempotency_key: str | None = None,
    parent_task_id: uuid.UUID | None = None,
    workflow_id: uuid.UUID | None = None,
    created_by: uuid.UUID | None = None,
    task_name: str | None = None,
    session: Session | None = None,
) -> list[uuid.UUID]:
    """Submit several tasks for one agent in one transaction; returns their ids.

    ``inputs`` is any iterable of inputs (a list, a generator); one input on
    its own (a dict) is refused: ``submit`` takes one.
    """
    inputs = _input_list(inputs)
    options = SubmitOptions(
        priority=priority,
        idempotency_key=idempotency_key,
        parent_task_id=parent_task_id,
        workflow_id=workflow_id,
        created_by=created_by,
        task_name=task_name,
    )
    if session is not None:
        _check_session(session)
        ids, new = insert_rows(session.connection(), agent, inputs, options)
        _dispatch_after_commit(session, [envelope.task_id for envelope in new])
        return ids
    return _submit_now(agent, inputs, options)[0]


def _input_list(
    inputs: Iterable[Mapping[str, Any] | BaseModel],
) -> list[Mapping[str, Any] | BaseModel]:
    """``inputs`` as a list, or ``ValidationFailed`` for one input given on its own.

    A dict would be iterated as its keys, and refused as if no dict had been given.
    """
    if not isinstance(inputs, Mapping | BaseModel | str | bytes) and isinstance(inputs, Iterable):
        return list(inputs)
    problem = f"inputs: a list of inputs, not {kind_of(inputs)}"
    raise ValidationFailed(f"{problem}; submit() takes one input", errors=[problem])


def _check_session(session: object) -> None:
    """Refuse a ``session`` that cannot send the message after its commit, naming it.

    Only an ORM ``Session`` (or a ``scoped_session``) says when its transaction
    commits; a ``Connection`` or an ``Engine`` failed deep inside instead.
    """
    if isinstance(session, Session | scoped_session):
        return
    problem = f"session: not an ORM Session ({kind_of(session)})"
    raise ValidationFailed(
        f"{problem}; pass the sqlalchemy.orm.Session whose transaction writes the task"
        " (the message leaves after it commits), or no session= to commit on its own",
        errors=[problem],
    )


def _submit_now(
    agent: str | uuid.UUID,
    inputs: Sequence[Mapping[str, Any] | BaseModel],
    options: SubmitOptions,
) -> tuple[list[uuid.UUID], dispatcher.Published]:
    """Insert in a transaction of its own, then send; the ids and what the broker took."""
    with get_engine().connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        inserted = insert_direct(connection, agent, inputs, options)
        if inserted is not None:  # written queued: only what the broker refused is put back
            ids, new = inserted
            published = _publish_or_discard(connection, new)
            sent = set(published.sent)
            dispatcher.unmark(connection, [e.task_id for e in new if e.task_id not in sent])
            return ids, published
    with get_engine().connect() as connection:  # the careful way, which says what is wrong
        with connection.begin():
            ids, new = insert_rows(connection, agent, inputs, options)
        connection.execution_options(isolation_level="AUTOCOMMIT")
        published = _publish_or_discard(connection, new)
        if published.sent:  # the relay sends the rest
            dispatcher.mark_dispatched(connection, published.sent, flush=False, fresh=True)
    return ids, published


def _publish_or_discard(
    connection: Connection, new: Sequence[dispatcher.Envelope]
) -> dispatcher.Published:
    """``dispatcher.publish``, or ``new`` removed when the submit fails as a whole.

    A Redis that refuses its settings before any message went out is a
    ``ConfigurationError`` (a broker that took some is no refusing one); an
    error no broker raises (a bug) goes on with a note.  Either way the
    caller gets no id: a row left behind would still be sent by the relay
    minutes later, and a caller who saw the error submits again.
    """
    try:
        published = dispatcher.publish(new, raises_refusal=True)
    except Exception as exc:
        dispatcher.discard(connection, [envelope.task_id for envelope in new])
        exc.add_note(_unsaved(new))
        raise
    refused = None if published.sent else refusal(published.error)
    if refused is not None:
        dispatcher.discard(connection, [envelope.task_id for envelope in new])
        raise ConfigurationError(
            f"{refused_message(refused)}; {_unsaved(new)}"
        ) from published.error
    return published


def _unsaved(new: Sequence[dispatcher.Envelope]) -> str:
    """``the task was not saved``, or ``the workflow ...`` for a workflow's supervisor task."""
    noun = "workflow" if any(e.agent_type == ROOT_AGENT for e in new) else "task"
    if len(new) == 1:
        return f"the {noun} was not saved"
    return f"the {len(new)} {noun}s were not saved"


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
    """Submit one agent task; returns its id.

    The same ``idempotency_key`` with the same agent and input returns the
    first task's id; with another agent or input it raises
    ``IdempotencyConflict``.
    """
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


def submit_and_report(
    agent: str | uuid.UUID,
    input_data: Mapping[str, Any] | BaseModel,
    *,
    priority: int | None = None,
    idempotency_key: str | None = None,
    parent_task_id: uuid.UUID | None = None,
    workflow_id: uuid.UUID | None = None,
    created_by: uuid.UUID | None = None,
    task_name: str | None = None,
) -> Submitted:
    """``submit`` (without a ``session``) that also says whether the broker took the message.

    With a caller's session the message leaves after the caller commits, so
    there is nothing to report when this would return: use ``submit`` there.
    """
    options = SubmitOptions(
        priority=priority,
        idempotency_key=idempotency_key,
        parent_task_id=parent_task_id,
        workflow_id=workflow_id,
        created_by=created_by,
        task_name=task_name,
    )
    ids, published = _submit_now(agent, [input_data], options)
    return Submitted(ids[0], published.error)


def get_task(task_id: uuid.UUID | str, *, states: bool = True) -> TaskView:
    """The task; ``NotFound`` if there is none, ``ValidationFailed`` if ``task_id`` is no UUID."""
    task_id = parse_id(task_id, noun="task", field="task_id")
    with get_engine().connect() as connection:
        view = load_task(connection, task_id, states=states)
    if view is None:
        raise NotFound(f"no agent task {task_id}")
    return view


def list_tasks(
    *,
    status: str | None = None,
    agent_type: str | None = None,
    workflow_id: uuid.UUID | str | None = None,
    limit: int = 50,
) -> list[TaskView]:
    """The newest tasks, filtered; ``ValidationFailed`` for an unknown status or agent type,
    a ``limit`` outside 1..1000 or a ``workflow_id`` that is no UUID (as ``toolbox task list``).
    """
    with get_engine().connect() as connection:
        return query_tasks(
            connection, status=status, agent_type=agent_type, workflow_id=workflow_id, limit=limit
        )


def cancel(task_id: uuid.UUID | str) -> CancelView:
    """Cancel a waiting task at once, or ask a running one to stop at its next phase.

    A task already running its last phase completes (``in_last_phase``).  A
    ``running`` task no worker holds (its worker was stopped or died) is
    cancelled at once (``orphaned``): nobody would read the request.

    A task of a workflow that is cancelled ends its workflow (``agents.cancel``).
    A task that had already finished stays as it was, and so does its workflow:
    ``running_workflow_id`` names the workflow when it goes on.
    """
    task_id = parse_id(task_id, noun="task", field="task_id")
    with get_engine().begin() as connection:
        found = cancelling.cancel_task(connection, task_id)
    if found is None:
        raise NotFound(f"no agent task {task_id}")
    return CancelView(
        **dict(get_task(task_id)),
        status_before=found.status,
        running_workflow_id=found.running_workflow_id,
        orphaned=found.orphaned,
    )


def wait(task_id: uuid.UUID | str, timeout: float = 60.0, *, poll: float = 0.05) -> TaskView:
    """Block until the task finishes; raise ``WaitTimeout`` after ``timeout`` seconds."""
    task_id = parse_id(task_id, noun="task", field="task_id")
    timeout, poll = check_wait(timeout, poll)
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
