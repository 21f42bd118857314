"""Building blocks the agent kinds share across their SPARC phases.

Each helper reads only the ``PhaseContext`` (payload and earlier phases' data),
so a task resumed after a crash recomputes exactly what it would have.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel, ValidationError

from agents.base import Phase, PhaseContext, PhaseOutcome, Usage
from agents.field_paths import field_errors
from agents.luau import LuauCheck
from agents.schemas import AgentInput, EnvironmentRequest
from models.errors import ConfigurationError, ModelError, ValidationFailed

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from agents.prompts import TaskName

P = TypeVar("P", bound=BaseModel)


def payload_as(ctx: PhaseContext, schema: type[P]) -> P:
    """The payload as ``schema``; a dict (e.g. rebuilt from JSON) is validated."""
    payload: object = ctx.payload
    if isinstance(payload, schema):
        return payload
    if isinstance(payload, BaseModel):
        payload = payload.model_dump()
    try:
        return schema.model_validate(payload)
    except ValidationError as exc:
        raise ValidationFailed(errors=field_errors(exc)) from exc


def earlier(ctx: PhaseContext, phase: Phase) -> Mapping[str, Any]:
    """The data of a finished phase; phases run in order, so it must be there."""
    data = ctx.previous.get(phase.value)
    if data is None:
        raise ValidationFailed(f"{ctx.agent_type}: phase {phase.value} has not run yet")
    return data


def stored(ctx: PhaseContext, phase: Phase, key: str, schema: type[P]) -> P:
    """Re-validate an artifact kept in an earlier phase's JSON data."""
    try:
        return schema.model_validate(earlier(ctx, phase)[key])
    except (KeyError, ValidationError) as exc:
        raise ValidationFailed(
            f"{ctx.agent_type}: {phase.value}.{key} is not valid: {exc}"
        ) from exc


def require_model(ctx: PhaseContext) -> BaseChatModel:
    if ctx.model is None:
        raise ConfigurationError(f"agent {ctx.agent_type!r} needs a chat model and got none")
    return ctx.model


def model_label(model: BaseChatModel) -> str:
    """What stored metadata says about the model (provider type and model name)."""
    name = getattr(model, "model_name", None) or getattr(model, "model", None) or ""
    return (
        f"{model._llm_type}:{name}"
        if name and ":" not in str(name)
        else str(name or model._llm_type)
    )


def constraints(request: EnvironmentRequest) -> list[str]:
    """The request's limits in plain words, restated by every situation phase."""
    notes = [
        f"grade {request.grade_level} {request.subject}, topic {request.topic!r}",
        f"{request.duration_minutes} minutes, up to {request.max_students} students",
        f"learner-facing text in {request.language}",
    ]
    if request.accessibility:
        notes.append(f"accessibility: {', '.join(request.accessibility)}")
    if request.adaptive:
        notes.append("adaptive difficulty")
    if not request.learning_objectives:
        notes.append("no objectives given: derive 2-4 from topic and grade")
    return notes


def situation(
    request: EnvironmentRequest, revision_notes: Sequence[str] = (), **extra: Any
) -> PhaseOutcome:
    return PhaseOutcome(
        data={
            "request": request.model_dump(mode="json"),
            "constraints": constraints(request),
            "revision_notes": list(revision_notes),
            **extra,
        }
    )


def problem(deliverable: str, schema: type[BaseModel], criteria: Sequence[str]) -> PhaseOutcome:
    return PhaseOutcome(
        data={
            "deliverable": deliverable,
            "schema": schema.__name__,
            "acceptance_criteria": list(criteria),
        }
    )


def action(ctx: PhaseContext, artifact: BaseModel, usage: Usage) -> PhaseOutcome:
    model = require_model(ctx)
    return PhaseOutcome(
        data={
            "artifact": artifact.model_dump(mode="json"),
            "model": model_label(model),
            "usage": usage.counts(),
        },
        usage=usage,
    )


def call_model(
    ctx: PhaseContext,
    task: TaskName,
    schema: type[P],
    request: EnvironmentRequest,
    *,
    instructions: str,
    inputs: Mapping[str, Any] | None = None,
    feedback: Sequence[str] = (),
) -> tuple[P, Usage]:
    """One structured call of the task's model for ``schema``, with the prompt for ``task``."""
    # imported here: the prompt and provider modules load langchain (about 0.4 s of CPU),
    # which the CLI, importing the agent kinds for their input schemas, never needs
    from agents.prompts import task_messages
    from agents.providers import invoke_structured

    messages = task_messages(
        task,
        agent=ctx.agent_type,
        schema=schema,
        request=request,
        instructions=instructions,
        inputs=inputs,
        feedback=feedback,
    )
    return invoke_structured(require_model(ctx), schema, messages)


def ask_for(
    ctx: PhaseContext,
    task: TaskName,
    schema: type[BaseModel],
    payload: AgentInput,
    *,
    instructions: str,
    what: str,
    inputs: Mapping[str, Any] | None = None,
) -> PhaseOutcome:
    """The action phase of an artifact agent: one structured model call for ``schema``."""
    ctx.report_progress(f"asking the model for {what}")
    artifact, usage = call_model(
        ctx,
        task,
        schema,
        payload.request,
        instructions=instructions,
        inputs=inputs,
        feedback=payload.revision_notes,
    )
    return action(ctx, artifact, usage)


def model_repair(
    ctx: PhaseContext,
    task: TaskName,
    schema: type[P],
    request: EnvironmentRequest,
    *,
    instructions: str,
    inputs: Mapping[str, Any],
    note: str,
) -> Callable[[list[str]], tuple[P, Usage]]:
    """The ``repair`` of ``parse_or_repair``: one model call fed the parse errors."""

    def repair(errors: list[str]) -> tuple[P, Usage]:
        ctx.report_progress(note)
        return call_model(
            ctx, task, schema, request, instructions=instructions, inputs=inputs, feedback=errors
        )

    return repair


def scores(issues: int, *, tested: bool, repaired: bool = False) -> tuple[float, float]:
    """Quality falls 0.2 per issue; confidence is higher when code was really parsed."""
    quality = max(0.0, 1.0 - 0.2 * issues)
    confidence = (0.95 if tested else 0.85) * (0.85 if repaired else 1.0) * (0.7 if issues else 1.0)
    return round(quality, 3), round(confidence, 3)


def result(
    kind: str,
    artifact: BaseModel,
    issues: Sequence[str],
    *,
    tested: bool,
    test_results: Mapping[str, LuauCheck] | None = None,
    tables: Sequence[str],
    repair: Mapping[str, Any] | None = None,
    usage: Usage | None = None,
) -> PhaseOutcome:
    """The result phase: the artifact, its checks and where the engine stores it."""
    repaired = bool(repair and repair.get("attempted"))
    quality, confidence = scores(len(issues), tested=tested, repaired=repaired)
    data: dict[str, Any] = {
        "artifact_kind": kind,
        "artifact": artifact.model_dump(mode="json"),
        "checks": {
            "tested": tested,
            "passed": not issues,
            "issues": list(issues),
            "test_results": {k: v.model_dump() for k, v in (test_results or {}).items()},
        },
        "tables": list(tables),
    }
    if repair is not None:
        data["repair"] = dict(repair)
    return PhaseOutcome(data, quality, confidence, usage or Usage())


def parse_or_repair(
    kind: str,
    artifact: P,
    parse: Callable[[P], dict[str, LuauCheck]],
    repair: Callable[[list[str]], tuple[P, Usage]],
) -> tuple[P, dict[str, LuauCheck], Usage, dict[str, Any]]:
    """Parse the artifact's Luau; if any fails, ask the model once to fix it.

    Luau that still fails is never stored: ``ModelError`` makes the engine retry
    this phase (the action is already persisted), which asks for a repair again.
    """
    checks = parse(artifact)
    if all(check.ok for check in checks.values()):
        return artifact, checks, Usage(), {"attempted": False, "errors_before": []}
    errors = [
        f"{name}: line {e.line} column {e.column}: {e.message}"
        for name, check in checks.items()
        for e in check.errors
    ]
    fixed, usage = repair(errors)
    checks = parse(fixed)
    broken = [name for name, check in checks.items() if not check.ok]
    if broken:
        raise ModelError(f"{kind}: Luau still does not parse after one repair: {', '.join(broken)}")
    return fixed, checks, usage, {"attempted": True, "errors_before": errors}


def reflection(ctx: PhaseContext, lessons: Sequence[str], focus: Sequence[str]) -> PhaseOutcome:
    """The context phase: scores from the result's checks, lessons, reviewer focus."""
    outcome = earlier(ctx, Phase.RESULT)
    checks = outcome.get("checks", {})
    issues = list(checks.get("issues", []))
    repaired = bool(outcome.get("repair", {}).get("attempted"))
    quality, confidence = scores(len(issues), tested=bool(checks.get("tested")), repaired=repaired)
    learned = list(lessons)
    if repaired:
        learned.append("the first Luau did not parse; include the parser errors in the prompt")
    learned += [f"fix: {issue}" for issue in issues[:5]]
    return PhaseOutcome(
        data={
            "quality_score": quality,
            "confidence_score": confidence,
            "lessons_learned": learned,
            "reviewer_focus": list(focus),
        },
        quality_score=quality,
        confidence_score=confidence,
    )
