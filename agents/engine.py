"""The SPARC engine: runs one agent task durably, phase by phase.

``Runner.execute`` is everything a Celery task needs to do with a task id:
take the lease, respect the agent's concurrency limit, claim the row, run
the phases that are not yet in ``agent_states`` (so a restarted task resumes
after its last written phase), write each phase as it finishes, and end the
row completed, retrying, failed or cancelled.  It returns a ``Decision``; the
caller (a Celery task) only turns "retry in N seconds" into a message.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, Engine

from agents import leases, lifecycle
from agents.base import PHASES, Phase, PhaseContext, PhaseOutcome, Usage
from agents.registry import get_kind
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
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (ConnectionError, TimeoutError)


@dataclass(frozen=True)
class Decision:
    action: Literal["done", "skip", "retry"]
    countdown: float = 0.0
    reason: str = ""


Publisher = Callable[[uuid.UUID, dict[str, Any]], None]
ModelFactory = Callable[[str], BaseChatModel]


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
    ) -> None:
        self.engine = engine
        self.hostname = hostname
        self.max_deliveries = max_deliveries
        self.publish = publish
        self.model_factory = model_factory
        self.timeout_errors = timeout_errors

    def execute(self, task_id: uuid.UUID) -> Decision:
        with self.engine.connect() as raw:
            connection = raw.execution_options(isolation_level="AUTOCOMMIT")
            try:
                return self._with_connection(connection, task_id)
            finally:
                lifecycle.release(connection)

    def _with_connection(self, connection: Connection, task_id: uuid.UUID) -> Decision:
        leased, task = lifecycle.lease_and_load(connection, task_id, leases.task_key(task_id))
        if task is None:
            return Decision("skip", reason="no such task")
        if task.status in lifecycle.TERMINAL:
            return Decision("skip", reason=f"task already {task.status}")
        if not leased:
            return Decision("skip", reason="another worker holds this task")
        start = random.randrange(task.max_concurrent_tasks)
        if leases.try_slot(connection, task.agent_id, task.max_concurrent_tasks, start) is None:
            return Decision("retry", random.uniform(*SLOT_WAIT_SECONDS), "no concurrency slot")
        claimed = lifecycle.claim(connection, task_id, self.hostname)
        if claimed is None:
            return Decision("skip", reason="task finished meanwhile")
        deliveries, finished = claimed
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
            raise ValidationFailed(errors=_field_errors(exc)) from None
        previous = {name: dict(data.get("output", {})) for name, data in finished.items()}
        model = self.model_factory(task.agent_type) if kind.uses_model else None
        model_name = _model_name(model)
        usage, phase_ms, quality = Usage(), {}, None
        started = time.perf_counter()
        for index, phase in enumerate(PHASES, start=1):
            if phase.value in previous:
                continue
            ctx = self._context(task, payload, previous, model)
            phase_started = time.perf_counter()
            outcome = kind.run_phase(phase, ctx)
            phase_ms[phase.value] = (time.perf_counter() - phase_started) * 1000
            usage.add(outcome.usage)
            if phase is Phase.CONTEXT:
                quality = outcome.quality_score
            cancel = self._record(
                connection, task, phase, outcome, phase_ms[phase.value], model_name, index
            )
            previous[phase.value] = outcome.data
            if cancel is not None and index < len(PHASES):
                raise TaskCancelled(f"cancelled after the {phase.value} phase")
        final = self._context(task, payload, previous, model)
        metrics = [
            _metric("execution_time", time.perf_counter() - started, unit="seconds"),
            _metric("success", 1),
            _metric("tokens_input", usage.input_tokens),
            _metric("tokens_output", usage.output_tokens),
            _metric("model_calls", usage.model_calls),
            *(_metric("phase_time", ms, phase=name, unit="ms") for name, ms in phase_ms.items()),
        ]
        if quality is not None:
            metrics.append(_metric("quality_score", quality))
        lifecycle.complete(connection, task, kind.output(final), metrics)
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
        phase: Phase,
        outcome: PhaseOutcome,
        duration_ms: float,
        model_name: str | None,
        index: int,
    ) -> Any:
        state_data = {
            "output": outcome.data,
            "duration_ms": round(duration_ms, 3),
            "model": model_name,
            "usage": vars(outcome.usage),
        }
        progress = index * 100 // len(PHASES) if index < len(PHASES) else 99
        cancel = lifecycle.record_phase(
            connection,
            task,
            phase.value,
            state_data,
            (outcome.quality_score, outcome.confidence_score),
            progress,
        )
        self.publish(
            task.workflow_id,
            {"task_id": str(task.id), "phase": phase.value, "progress": progress,
             "status": "running", "agent_type": task.agent_type},
        )  # fmt: skip
        return cancel

    def _failed(self, task: lifecycle.TaskRow, exc: BaseException) -> Decision:
        if isinstance(exc, self.timeout_errors):
            exc = TaskTimeout(f"soft time limit of {task.timeout_seconds}s reached")
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise exc
        retryable = is_retryable(exc)
        details = lifecycle.error_details(exc, retryable=retryable)
        with self.engine.begin() as connection:
            if isinstance(exc, TaskCancelled):
                lifecycle.finish_unsuccessfully(connection, task.id, "cancelled", details)
                status, decision = "cancelled", Decision("done", reason=str(exc))
            elif retryable and task.retry_count < task.retry_budget:
                delay = backoff(task.retry_count, getattr(exc, "retry_after", None))
                lifecycle.schedule_retry(connection, task.id, delay, details)
                status, decision = "retrying", Decision("retry", delay, str(exc))
            else:
                if retryable:
                    details["message"] = f"retry budget of {task.retry_budget} spent: {exc}"
                lifecycle.finish_unsuccessfully(connection, task.id, "failed", details)
                lifecycle.write_metrics(connection, task, [_metric("success", 0)])
                status, decision = "failed", Decision("done", reason=str(exc))
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


def _metric(metric_type: str, value: float, **context: Any) -> dict[str, Any]:
    return {"metric_type": metric_type, "value": round(float(value), 4), "context": context}


def _model_name(model: BaseChatModel | None) -> str | None:
    if model is None:
        return None
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    return str(name) if name else type(model).__name__


def _field_errors(exc: ValidationError) -> list[str]:
    return [
        f"{'.'.join(str(part) for part in error['loc']) or 'input'}: {error['msg']}"
        for error in exc.errors()
    ]
