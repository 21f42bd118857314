"""Supervisor: turns a teacher's request into the plan of child tasks of a workflow.

The plan is pure data, made without a model: which artifacts are needed, one
child task per artifact with its validated input, then one review of them all.
The engine writes the child rows (DESIGN decision 5) and, when the last child
finishes, builds the review input with ``ReviewInput.from_outputs``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from agents.base import AgentKind, Phase, PhaseContext, PhaseOutcome
from agents.phases import payload_as, problem, reflection, result, situation, stored
from agents.schemas import (
    INPUT_SCHEMAS,
    AgentInput,
    ArtifactName,
    ChildTask,
    EnvironmentRequest,
    QuizInput,
    TerrainInput,
    WorkflowPlan,
    default_question_count,
    default_terrain_size,
)


def child_input(kind: ArtifactName, request: EnvironmentRequest) -> AgentInput:
    """The input of one child task, with the defaults the supervisor decides."""
    if kind == "quiz":
        return QuizInput(request=request, question_count=default_question_count(request))
    if kind == "terrain":
        return TerrainInput(request=request, size=default_terrain_size(request))
    return INPUT_SCHEMAS[kind](request=request)


class SupervisorAgent(AgentKind):
    """Plans the workflow: content, quiz, terrain and script in parallel, then review."""

    agent_type = "supervisor"
    input_schema = EnvironmentRequest
    description = "Plans the child tasks of a learning-environment workflow."
    uses_model = False

    def run_phase(self, phase: Phase, ctx: PhaseContext) -> PhaseOutcome:
        request = payload_as(ctx, EnvironmentRequest)
        match phase:
            case Phase.SITUATION:
                return situation(request)
            case Phase.PROBLEM:
                return self._problem(request)
            case Phase.ACTION:
                return self._action(request)
            case Phase.RESULT:
                return self._result(ctx)
            case Phase.CONTEXT:
                return self._context(ctx, request)

    def output(self, ctx: PhaseContext) -> dict[str, Any]:
        """The plan: ``needs`` (artifacts), ``children`` and ``review_after``."""
        return dict(ctx.previous.get(Phase.RESULT.value, {}).get("artifact", {}))

    @staticmethod
    def _problem(request: EnvironmentRequest) -> PhaseOutcome:
        return problem(
            f"a plan producing {', '.join(request.artifacts)} and a review",
            WorkflowPlan,
            [
                "one child task per requested artifact, run in parallel",
                "every child input validates against its agent's input schema",
                "one review task after all children, over all their artifacts",
            ],
        )

    @staticmethod
    def _action(request: EnvironmentRequest) -> PhaseOutcome:
        plan = WorkflowPlan(
            needs=list(request.artifacts),
            children=[
                ChildTask(agent_type=kind, input=child_input(kind, request).model_dump(mode="json"))
                for kind in request.artifacts
            ],
            review_after=list(request.artifacts),
        )
        return PhaseOutcome(data={"artifact": plan.model_dump(mode="json")})

    @staticmethod
    def _result(ctx: PhaseContext) -> PhaseOutcome:
        plan = stored(ctx, Phase.ACTION, "artifact", WorkflowPlan)
        issues = []
        for index, child in enumerate(plan.children):
            try:
                INPUT_SCHEMAS[child.agent_type].model_validate(child.input)
            except ValidationError as exc:
                issues.append(f"plan.children[{index}].input: {exc.error_count()} invalid fields")
        return result("plan", plan, issues, tested=True, tables=())

    @staticmethod
    def _context(ctx: PhaseContext, request: EnvironmentRequest) -> PhaseOutcome:
        return reflection(
            ctx,
            lessons=[f"{len(request.artifacts)} child tasks planned"],
            focus=["the review decides whether any child must run again"],
        )
