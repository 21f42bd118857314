"""``echo``: the diagnostic agent; runs all five SPARC phases without a model.

Operators use it to check a deployment end to end (``toolbox task submit echo
--input '{"message": "hi"}' --wait``) and the benchmarks use it to measure the
engine's own cost.  Its optional fault drills (slow phases, failures on the
first attempts) exercise timeouts, retries and cancellation on a real stack.
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from agents.base import AgentKind, Phase, PhaseContext, PhaseOutcome
from models.errors import PermanentError, RetryableError


class EchoInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(default="", max_length=10_000)
    phase_seconds: float = Field(default=0.0, ge=0, le=600, description="work per phase")
    fail_phase: Phase | None = Field(default=None, description="phase that raises")
    fail_kind: Literal["retryable", "permanent"] = "retryable"
    fail_attempts: int = Field(
        default=1, ge=0, le=100, description="attempts that fail before one succeeds"
    )


class EchoFailure(RetryableError):
    """The echo agent's fault drill failed this attempt on purpose."""


class EchoPermanentFailure(PermanentError):
    """The echo agent's fault drill failed permanently on purpose."""


class EchoAgent(AgentKind):
    agent_type: ClassVar[str] = "echo"
    input_schema: ClassVar[type[BaseModel]] = EchoInput
    description: ClassVar[str] = "Diagnostic agent: echoes its input through the SPARC phases."

    def run_phase(self, phase: Phase, ctx: PhaseContext) -> PhaseOutcome:
        payload = ctx.payload
        assert isinstance(payload, EchoInput)
        self._work(payload.phase_seconds)
        if payload.fail_phase == phase and ctx.attempt < payload.fail_attempts:
            error = EchoFailure if payload.fail_kind == "retryable" else EchoPermanentFailure
            raise error(f"echo drill: {phase} failed on attempt {ctx.attempt + 1}")
        data: dict[str, Any] = {"phase": phase.value, "message": payload.message}
        if phase is Phase.RESULT:
            data["echo"] = payload.message
            data["length"] = len(payload.message)
        return PhaseOutcome(data=data, quality_score=1.0, confidence_score=1.0)

    @staticmethod
    def _work(seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            time.sleep(min(left, 0.05))
