"""What every agent kind is: the SPARC phases and the contract the engine calls.

The engine (``agents.engine``) owns persistence; an agent kind only turns the
validated input and the outputs of earlier phases into the output of the next
phase.  Nothing here knows about Celery or the database.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel


class Phase(enum.StrEnum):
    """SPARC phases in the order they run; ``context`` is the reflection."""

    SITUATION = "situation"
    PROBLEM = "problem"
    ACTION = "action"
    RESULT = "result"
    CONTEXT = "context"


PHASES: tuple[Phase, ...] = tuple(Phase)


@dataclass
class Usage:
    """Model usage of one phase (zero for phases that call no model)."""

    input_tokens: int = 0
    output_tokens: int = 0
    model_calls: int = 0
    latency_ms: float = 0.0
    """Time spent waiting for the model, summed over its calls."""

    def add(self, other: Usage) -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.model_calls += other.model_calls
        self.latency_ms += other.latency_ms

    def counts(self) -> dict[str, int]:
        """Tokens and calls only: deterministic, so fit for a phase's own data."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "model_calls": self.model_calls,
        }


@dataclass(frozen=True)
class PhaseContext:
    """Everything a phase may read.

    ``previous`` maps the names of finished phases to their ``data``; after a
    crash it is rebuilt from ``agent_states``, so phases must not rely on
    anything else carried in memory.
    """

    task_id: str
    workflow_id: str
    agent_type: str
    payload: BaseModel
    previous: Mapping[str, Mapping[str, Any]]
    model: BaseChatModel | None = None
    report_progress: Callable[[str], None] = field(default=lambda _note: None)
    attempt: int = 0
    """How many retries came before this run (0 on the first attempt)."""


@dataclass
class PhaseOutcome:
    """The JSON-serialisable result of one phase, with its scores in [0, 1]."""

    data: dict[str, Any]
    quality_score: float | None = None
    confidence_score: float | None = None
    usage: Usage = field(default_factory=Usage)


class AgentKind:
    """Base class of the agent kinds; subclasses register themselves by ``agent_type``."""

    agent_type: ClassVar[str]
    input_schema: ClassVar[type[BaseModel]]
    description: ClassVar[str] = ""
    uses_model: ClassVar[bool] = False

    def run_phase(self, phase: Phase, ctx: PhaseContext) -> PhaseOutcome:
        raise NotImplementedError(f"{type(self).__name__} does not implement phase {phase}")

    def output(self, ctx: PhaseContext) -> dict[str, Any]:
        """The task's ``output_data``: by default the result phase's data."""
        return dict(ctx.previous.get(Phase.RESULT.value, {}))
