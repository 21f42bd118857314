"""The SPARC engine: runs one agent task durably, phase by phase.

``Runner.execute`` is everything a Celery task needs to do with a task id:
take the lease, respect the agent's concurrency limit, claim the row, run
the phases that are not yet in ``agent_states`` (so a restarted task resumes
after its last written phase), write each phase as it finishes, and end the
row completed, retrying, failed or cancelled.  It returns a ``Decision``; the
caller (a Celery task) only turns "retry in N seconds" into a message.
"""

from __future__ import annotations

import contextlib
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from agents import hotpath, leases, lifecycle, workflow
from agents.base import PHASES, Phase, PhaseContext, PhaseOutcome, Usage
from agents.field_paths import field_errors
from agents.registry import get_kind

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel
from models.errors import (
    RedeliveryExceeded,
    RetryableError,
    TaskCancelled,
    TaskTimeout,
    ToolboxError,
    ValidationFailed,
)

log = logging.getLogger(__name__)

RETRY_BASE_SECONDS = 1.0
RETRY_CAP_SECONDS = 300.0
SLOT_WAIT_SECONDS = (0.2, 1.0)
LEASE_WAIT_SECONDS = 5.0
"""How long a delivery waits for the lease of a ``running`` task (``Runner._lease_and_load``)."""
PROGRESS_INTERVAL = 0.25
"""A running task reports progress (row and event) at most this often, in seconds.

Every phase is written to ``agent_states`` as it ends; progress on the task
row and the pub/sub event follow at the first phase boundary at least this
long after the claim or the last report, so a task of long phases reports at
every phase and a fast one only its completion.
"""
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


class _DroppedWhileIdle(Exception):
    """The kept connection broke before this delivery's first statement got an answer."""

    def __init__(self, error: DBAPIError) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(frozen=True)
class Decision:
    action: Literal["done", "skip", "retry"]
    countdown: float = 0.0
    reason: str = ""


@dataclass(frozen=True)
class TaskFailure:
    """What an error reporter (``error_logs``) learns about a failed attempt."""

    task_id: uuid.UUID
    agent_id: uuid.UUID
    workflow_id: uuid.UUID
    agent_type: str
    status: str
    details: dict[str, Any]


Publisher = Callable[[uuid.UUID, dict[str, Any]], None]
Dispatcher = Callable[[list[uuid.UUID]], None]
ErrorReporter = Callable[[TaskFailure], None]
ModelFactory = Callable[[str], "BaseChatModel"]


def backoff(retry_count: int, retry_after: float | None = None) -> float:
    """Exponential backoff with equal jitter, never shorter than ``retry_after``."""
    ceiling = min(RETRY_CAP_SECONDS, RETRY_BASE_SECONDS * 2**retry_count)
    delay = ceiling / 2 + random.uniform(0, ceiling / 2)
    return float(max(delay, retry_after or 0.0))


def is_retryable(exc: BaseException) -> bool:
    if isinstance(exc, ToolboxError):
        return isinstance(exc, RetryableError)
    from sqlalchemy.exc import DBAPIError

    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or type(exc.orig).__name__ in {
            "OperationalError",
            "SerializationFailure",
            "DeadlockDetected",
        }
    return isinstance(exc, TRANSIENT_ERRORS)


class Runner:
    """Executes agent tasks against one engine; one instance per worker process."""

    def __init__(
        self,
        engine: Engine,
        *,
        hostname: str,
        max_deliveries: int,
        publish: Publisher,
        model_factory: ModelFactory,
        timeout_errors: tuple[type[BaseException], ...] = (),
        report_error: ErrorReporter | None = None,
        dispatch: Dispatcher | None = None,
    ) -> None:
        self.dispatch = dispatch
        self._conn: Connection | None = None
        self._kept = False
        self._released = False
        self.engine = engine
        self.report_error = report_error
        self.hostname = hostname
        self.max_deliveries = max_deliveries
        self.publish = publish
        self.model_factory = model_factory
        self.timeout_errors = timeout_errors

    def execute(self, task_id: uuid.UUID) -> Decision:
        """Run the task if this delivery should; never raises for database outages.

        A kept connection that PostgreSQL dropped while it sat idle between
        tasks (a restart, ``pg_terminate_backend``, ``idle_session_timeout``)
        fails the delivery's first statement, the claim: the delivery then
        reconnects and claims at once, rather than wait for a Celery retry.
        That is safe: the claim is one guarded autocommit statement, and a
        claim that did commit before its answer was lost left a ``running``
        row whose lease died with the session, which any delivery may claim
        (a later retry would do exactly the same).  Only once, and only for
        a kept connection: a fresh one that fails means PostgreSQL is away.
        """
        try:
            try:
                return self._attempt(task_id)
            except _DroppedWhileIdle as dropped:
                self._drop_connection()
                log.info(
                    "database connection dropped while idle (%s); reconnecting for task %s",
                    type(dropped.error.orig).__name__,
                    task_id,
                )
                return self._attempt(task_id)  # on a fresh connection: a failure is an outage
        except DBAPIError as exc:
            return self._database_unavailable(task_id, exc)

    def _attempt(self, task_id: uuid.UUID) -> Decision:
        connection = self._connection()
        self._released = False
        try:
            return self._with_connection(connection, task_id)
        finally:
            if connection.invalidated:
                # Its session is gone, and its locks with it.  Using it again would
                # reconnect it outside autocommit: nothing it wrote would commit.
                self._drop_connection()
            elif not self._released:
                hotpath.release(connection)

    def _database_unavailable(self, task_id: uuid.UUID, exc: DBAPIError) -> Decision:
        self._drop_connection()
        log.warning("database unavailable for task %s: %s", task_id, type(exc.orig).__name__)
        return Decision("retry", random.uniform(1.0, 3.0), "database unavailable")

    def _connection(self) -> Connection:
        """The runner's own autocommit connection, kept across tasks (no pool round trips).

        Advisory locks live on it while a task runs and are all released after.
        One that broke is dropped, never used again: SQLAlchemy would reconnect
        an invalidated connection on its next use, with a pool connection
        outside autocommit.  ``_kept`` says whether it served an earlier task.
        """
        if self._conn is None or self._conn.closed or self._conn.invalidated:
            self._conn = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
            self._kept = False
        else:
            self._kept = True
        return self._conn

    def _drop_connection(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.invalidate()
                self._conn.close()
        self._conn = None

    def _with_connection(self, connection: Connection, task_id: uuid.UUID) -> Decision:
        start = random.randrange(1 << 16)
        try:
            fast = hotpath.fast_claim(
                connection, task_id, self.hostname, leases.task_key(task_id), start
            )
        except DBAPIError as exc:
            if exc.connection_invalidated and self._kept:
                raise _DroppedWhileIdle(exc) from exc
            raise
        if fast is not None:
            return self._claimed(connection, *fast)
        loaded = self._lease_and_load(connection, task_id, start)
        task = loaded.task
        if task is None:
            return Decision("skip", reason="no such task")
        if task.status in lifecycle.TERMINAL:
            return Decision("skip", reason=f"task already {task.status}")
        if not loaded.leased:
            return Decision("skip", reason="another worker holds this task")
        slots = task.max_concurrent_tasks
        if not loaded.slot_taken and slots > 1:
            loaded_slot = leases.try_slot(connection, task.agent_id, slots, start + 1)
        else:
            loaded_slot = 0 if loaded.slot_taken else None
        if loaded_slot is None:
            hotpath.release_to_wait_for_slot(connection, task_id)
            self._released = True
            return Decision("retry", random.uniform(*SLOT_WAIT_SECONDS), "no concurrency slot")
        claimed = lifecycle.claim(connection, task_id, self.hostname)
        if claimed is None:
            return Decision("skip", reason="task finished meanwhile")
        return self._claimed(connection, task, *claimed)

    def _lease_and_load(
        self, connection: Connection, task_id: uuid.UUID, start: int
    ) -> lifecycle.Loaded:
        """``lifecycle.lease_and_load``; a ``running`` row's lease is waited for a while.

        Its holder may be a pool child killed mid-task whose session PostgreSQL
        has not closed yet: skipped at once, this (requeued) delivery left the
        task to the reaper.  A live holder (a duplicate message) is waited for
        ``LEASE_WAIT_SECONDS``, then skipped as before.
        """
        loaded = lifecycle.lease_and_load(connection, task_id, leases.task_key(task_id), start)
        if loaded.leased or loaded.task is None or loaded.task.status != "running":
            return loaded
        if not leases.wait_for_lease(connection, task_id, LEASE_WAIT_SECONDS):
            return loaded
        # the lease is held twice now (and the slot, if taken): released together at the end
        return lifecycle.lease_and_load(connection, task_id, leases.task_key(task_id), start)

    def _claimed(
        self,
        connection: Connection,
        task: lifecycle.TaskRow,
        deliveries: int,
        finished: dict[str, Any],
    ) -> Decision:
        try:
            if deliveries > self.max_deliveries:
                raise RedeliveryExceeded(
                    f"delivered {deliveries} times without finishing (limit "
                    f"{self.max_deliveries}); the worker probably crashes on it"
                )
            if task.cancel_requested_at is not None:
                raise TaskCancelled("cancelled before it started")
            self._run_phases(connection, task, finished)
        except BaseException as exc:
            return self._failed(task, exc)
        return Decision("done")

    def _run_phases(
        self, connection: Connection, task: lifecycle.TaskRow, finished: dict[str, Any]
    ) -> None:
        kind = get_kind(task.agent_type)
        try:
            payload = kind.input_schema.model_validate(task.input_data)
        except ValidationError as exc:
            raise ValidationFailed(errors=field_errors(exc)) from None
        previous = {name: dict(data.get("output", {})) for name, data in finished.items()}
        model = self.model_factory(task.agent_type) if kind.uses_model else None
        model_name = _model_name(model)
        usage, phase_ms, quality = Usage(), {}, None
        standalone = not workflow.involved(task)
        last_phase: hotpath.PhaseWrite | None = None
        started = reported = time.perf_counter()
        for index, phase in enumerate(PHASES, start=1):
            if phase.value in previous:
                continue
            ctx = self._context(task, payload, previous, model)
            phase_started = time.perf_counter()
            outcome = kind.run_phase(phase, ctx)
            phase_ms[phase.value] = (time.perf_counter() - phase_started) * 1000
            usage.add(outcome.usage)
            previous[phase.value] = outcome.data
            sequence = len(previous) if standalone else None  # a standalone task numbers its own
            write = _phase_write(phase, outcome, phase_ms[phase.value], model_name, sequence)
            if phase is Phase.CONTEXT:
                quality = outcome.quality_score
                if standalone:
                    last_phase = write  # written by the completion statement, at once
                    continue
            report = time.perf_counter() - reported >= PROGRESS_INTERVAL
            if report:
                reported = time.perf_counter()
            cancel = self._record(connection, task, write, index, report)
            if cancel is not None and index < len(PHASES):
                raise TaskCancelled(f"cancelled after the {phase.value} phase")
        final = self._context(task, payload, previous, model)
        metrics = _task_metrics(time.perf_counter() - started, phase_ms, usage, quality, model)
        output = kind.output(final)
        if standalone:
            hotpath.complete(
                connection, task, output, metrics, release_locks=True, last_phase=last_phase
            )
            self._released = True
        else:
            with self.engine.begin() as transaction:
                workflow.lock_root(transaction, task.workflow_id)  # first: the lock order
                created = (
                    workflow.on_completed(transaction, task, output)
                    if hotpath.complete(transaction, task, output, metrics)
                    else []
                )
            self._send(created)
        self.publish(
            task.workflow_id,
            {"task_id": str(task.id), "progress": 100, "status": "completed",
             "agent_type": task.agent_type},
        )  # fmt: skip

    @staticmethod
    def _context(
        task: lifecycle.TaskRow,
        payload: BaseModel,
        previous: dict[str, dict[str, Any]],
        model: BaseChatModel | None,
    ) -> PhaseContext:
        return PhaseContext(
            task_id=str(task.id),
            workflow_id=str(task.workflow_id),
            agent_type=task.agent_type,
            payload=payload,
            previous=previous,
            model=model,
            attempt=task.retry_count,
        )

    def _record(
        self,
        connection: Connection,
        task: lifecycle.TaskRow,
        write: hotpath.PhaseWrite,
        index: int,
        report: bool,
    ) -> Any:
        progress = index * 100 // len(PHASES) if index < len(PHASES) else 99
        cancel = hotpath.record_phase(connection, task, write, progress if report else None)
        if report:
            self.publish(
                task.workflow_id,
                {"task_id": str(task.id), "phase": write.phase, "progress": progress,
                 "status": "running", "agent_type": task.agent_type},
            )  # fmt: skip
        return cancel

    def _send(self, created: list[uuid.UUID]) -> None:
        """Messages for tasks written by a workflow step; the relay covers a failure here."""
        if created and self.dispatch is not None:
            try:
                self.dispatch(created)
            except Exception:
                log.exception(
                    "could not dispatch %d workflow task(s); the relay will", len(created)
                )

    def _failed(self, task: lifecycle.TaskRow, exc: BaseException) -> Decision:
        if isinstance(exc, self.timeout_errors):
            exc = TaskTimeout(f"soft time limit of {task.timeout_seconds}s reached")
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise exc
        retryable = is_retryable(exc)
        details = lifecycle.error_details(exc, retryable=retryable)
        with self.engine.begin() as connection:
            if isinstance(exc, TaskCancelled):
                workflow.end_task(connection, task, "cancelled", details)
                status, decision = "cancelled", Decision("done", reason=details["message"])
            elif retryable and task.retry_count < task.retry_budget:
                delay = backoff(task.retry_count, getattr(exc, "retry_after", None))
                lifecycle.schedule_retry(connection, task.id, delay, details)
                status, decision = "retrying", Decision("retry", delay, details["message"])
            else:
                if retryable:
                    spent = f"retry budget of {task.retry_budget} spent: {details['message']}"
                    details["message"] = spent
                workflow.end_task(connection, task, "failed", details)
                lifecycle.write_metrics(connection, task, [_metric("success", 0)])
                status, decision = "failed", Decision("done", reason=details["message"])
        if self.report_error is not None and status != "cancelled":
            failure = TaskFailure(
                task.id, task.agent_id, task.workflow_id, task.agent_type, status, details
            )
            try:
                self.report_error(failure)
            except Exception:
                log.exception("could not record the failure of task %s", task.id)
        log.warning(
            "agent task %s %s: %s",
            task.id,
            status,
            details["type"],
            extra={"task_id": str(task.id), "workflow_id": str(task.workflow_id)},
        )
        self.publish(
            task.workflow_id,
            {
                "task_id": str(task.id),
                "status": status,
                "agent_type": task.agent_type,
                "error": details["type"],
            },
        )
        return decision


def _phase_write(
    phase: Phase,
    outcome: PhaseOutcome,
    duration_ms: float,
    model_name: str | None,
    sequence: int | None,
) -> hotpath.PhaseWrite:
    data = {
        "output": outcome.data,
        "duration_ms": round(duration_ms, 3),
        "model": model_name,
        "usage": vars(outcome.usage),
    }
    return hotpath.PhaseWrite(
        phase.value, data, outcome.quality_score, outcome.confidence_score, sequence
    )


def _task_metrics(
    seconds: float,
    phase_ms: dict[str, float],
    usage: Usage,
    quality: float | None,
    model: BaseChatModel | None,
) -> list[dict[str, Any]]:
    """The ``agent_metrics`` rows of a completed task.

    Phase times share one ``phase_time`` row (the sum, with each phase run by
    this delivery in ``context.phases``); model usage is written only for a
    task that had a model, so a model-free kind writes three or four rows.
    """
    phases = {name: round(ms, 3) for name, ms in phase_ms.items()}
    metrics = [
        _metric("execution_time", seconds, unit="seconds"),
        _metric("phase_time", sum(phase_ms.values()), unit="ms", phases=phases),
        _metric("success", 1),
    ]
    if model is not None:
        metrics += [
            _metric("tokens_input", usage.input_tokens),
            _metric("tokens_output", usage.output_tokens),
            _metric("model_calls", usage.model_calls),
            _metric("model_latency", usage.latency_ms, unit="ms"),
        ]
    if quality is not None:
        metrics.append(_metric("quality_score", quality))
    return metrics


def _metric(metric_type: str, value: float, **context: Any) -> dict[str, Any]:
    return {"metric_type": metric_type, "value": round(float(value), 4), "context": context}


def _model_name(model: BaseChatModel | None) -> str | None:
    if model is None:
        return None
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    return str(name) if name else type(model).__name__
