"""Review agent: enforces the rule checks on every artifact, then asks for a judgement.

Rules come first and win: a rule violation can never be approved, whatever the
model says.  The model adds what rules cannot see (fit to the grade, language,
accessibility, coverage) and names who must revise what.
"""

from __future__ import annotations

from typing import Any

from agents.base import AgentKind, Phase, PhaseContext, PhaseOutcome
from agents.checks import check_review_input, split_issue
from agents.phases import action, call_model, earlier, payload_as, problem, situation, stored
from agents.schemas import (
    INPUT_SCHEMAS,
    ArtifactIssue,
    ArtifactName,
    ChildTask,
    ReviewInput,
    ReviewVerdict,
    RevisionRequest,
)

INSTRUCTIONS = (
    "Review the artifacts in `inputs` against the request. `inputs.rule_issues` lists rule "
    "violations already found by automatic checks: each must appear in `issues` and block "
    "approval. Judge also what rules cannot see: fit to the grade and language, whether "
    "every objective is taught and assessed, whether each accessibility need is met. "
    "Approve only if nothing must change; otherwise add one revision request per agent "
    "(content, quiz, terrain, script) saying what to revise and why."
)


def enforce(verdict: ReviewVerdict, rule_issues: dict[str, list[str]]) -> ReviewVerdict:
    """The model's verdict with every rule issue added and blocking approval."""
    verdict = verdict.model_copy(deep=True)
    issues = list(verdict.issues)
    requests: dict[ArtifactName, RevisionRequest] = {
        r.agent_type: r for r in verdict.revision_requests
    }
    seen = {(i.artifact, i.field, i.reason) for i in issues}
    found = [split_issue(issue) for listed in rule_issues.values() for issue in listed]
    for artifact, field, reason in found:
        if (artifact, field, reason) not in seen:
            issues.append(ArtifactIssue(artifact=artifact, field=field, reason=reason))
        note = f"{field}: {reason}"
        request = requests.get(artifact)
        if request is None:
            requests[artifact] = RevisionRequest(
                agent_type=artifact,
                instructions=f"Fix the rule violations of the {artifact} listed in the reasons",
                reasons=[note],
            )
        elif note not in request.reasons:
            request.reasons.append(note)
    if not found:
        return verdict
    return ReviewVerdict(
        approved=False,
        score=min(verdict.score, max(0.0, 1.0 - 0.2 * len(found))),
        summary=verdict.summary if not verdict.approved else f"{len(found)} rule violation(s)",
        issues=issues[:50],
        revision_requests=list(requests.values()),
    )


def revision_tasks(review: ReviewInput, verdict: ReviewVerdict) -> list[ChildTask]:
    """Child tasks that redo the artifacts the verdict sends back, with its reasons."""
    tasks = []
    for wanted in verdict.revision_requests:
        notes = [wanted.instructions, *wanted.reasons][:20]
        payload = INPUT_SCHEMAS[wanted.agent_type](request=review.request, revision_notes=notes)
        tasks.append(ChildTask(agent_type=wanted.agent_type, input=payload.model_dump(mode="json")))
    return tasks


class ReviewAgent(AgentKind):
    """Approves the workflow's artifacts or sends named work back with reasons."""

    agent_type = "review"
    input_schema = ReviewInput
    description = "Rule checks plus a model's judgement over all artifacts of a workflow."
    uses_model = True

    def run_phase(self, phase: Phase, ctx: PhaseContext) -> PhaseOutcome:
        payload = payload_as(ctx, ReviewInput)
        match phase:
            case Phase.SITUATION:
                return self._situation(payload)
            case Phase.PROBLEM:
                return self._problem()
            case Phase.ACTION:
                return self._action(ctx, payload)
            case Phase.RESULT:
                return self._result(ctx, payload)
            case Phase.CONTEXT:
                return self._context(ctx)

    def output(self, ctx: PhaseContext) -> dict[str, Any]:
        """The enforced verdict plus ``revision_tasks`` ready for the engine."""
        data = ctx.previous.get(Phase.RESULT.value, {})
        return {**data.get("artifact", {}), "revision_tasks": data.get("revision_tasks", [])}

    @staticmethod
    def _situation(payload: ReviewInput) -> PhaseOutcome:
        present = {
            "content": payload.content is not None,
            "quiz": payload.quiz is not None,
            "terrain": payload.terrain is not None,
            "script": bool(payload.scripts),
        }
        return situation(
            payload.request,
            present=[name for name, there in present.items() if there],
            missing=[name for name in payload.request.artifacts if not present[name]],
        )

    @staticmethod
    def _problem() -> PhaseOutcome:
        return problem(
            "a verdict over all artifacts",
            ReviewVerdict,
            [
                "every rule check passes (options, explanations, points, objective links, Luau)",
                "the artifacts fit the grade, language and accessibility needs",
                "each revision request names the agent, what to revise and why",
            ],
        )

    def _action(self, ctx: PhaseContext, payload: ReviewInput) -> PhaseOutcome:
        rule_issues = check_review_input(payload)
        ctx.report_progress(
            f"{sum(map(len, rule_issues.values()))} rule issue(s); asking the model"
        )
        artifacts = payload.model_dump(mode="json", exclude={"request"})
        verdict, usage = call_model(
            ctx,
            "review",
            ReviewVerdict,
            payload.request,
            instructions=INSTRUCTIONS,
            inputs={**artifacts, "rule_issues": rule_issues},
        )
        outcome = action(ctx, verdict, usage)
        outcome.data["rule_issues"] = rule_issues
        return outcome

    def _result(self, ctx: PhaseContext, payload: ReviewInput) -> PhaseOutcome:
        model_verdict = stored(ctx, Phase.ACTION, "artifact", ReviewVerdict)
        rule_issues: dict[str, list[str]] = dict(earlier(ctx, Phase.ACTION)["rule_issues"])
        verdict = enforce(model_verdict, rule_issues)
        flat = [issue for listed in rule_issues.values() for issue in listed]
        agree = model_verdict.approved == verdict.approved
        return PhaseOutcome(
            data={
                "artifact_kind": "review",
                "artifact": verdict.model_dump(mode="json"),
                "model_verdict": model_verdict.model_dump(mode="json"),
                "checks": {"tested": True, "passed": not flat, "issues": flat, "test_results": {}},
                "revision_tasks": [
                    t.model_dump(mode="json") for t in revision_tasks(payload, verdict)
                ],
                "tables": [],
            },
            quality_score=verdict.score,
            confidence_score=0.9 if agree else 0.6,
        )

    @staticmethod
    def _context(ctx: PhaseContext) -> PhaseOutcome:
        data = earlier(ctx, Phase.RESULT)
        verdict = ReviewVerdict.model_validate(data["artifact"])
        model_approved = bool(data["model_verdict"]["approved"])
        agree = model_approved == verdict.approved
        lessons = [verdict.summary]
        if not agree:
            lessons.append("the model approved work that breaks the rules; rules overrode it")
        return PhaseOutcome(
            data={
                "quality_score": verdict.score,
                "confidence_score": 0.9 if agree else 0.6,
                "lessons_learned": lessons,
                "reviewer_focus": [
                    f"{r.agent_type}: {r.instructions}" for r in verdict.revision_requests
                ]
                or ["approved: spot-check the quiz answers and run the scripts in Studio"],
            },
            quality_score=verdict.score,
            confidence_score=0.9 if agree else 0.6,
        )
