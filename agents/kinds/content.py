"""Content agent: the lesson plan of the environment and its learning objectives."""

from __future__ import annotations

from agents.base import AgentKind, Phase, PhaseContext, PhaseOutcome
from agents.checks import check_content
from agents.phases import (
    ask_for,
    payload_as,
    problem,
    reflection,
    result,
    situation,
    stored,
)
from agents.schemas import ContentInput, LessonContent

INSTRUCTIONS = (
    "Write the lesson plan of a Roblox learning environment for this request. Use the "
    "teacher's learning_objectives as `objectives`, or derive 2-4 measurable ones from the "
    "topic and grade (harder Bloom levels for higher grades) when none are given. Plan 3-6 "
    "sections with activities set in the Roblox world; every section and activity lists in "
    "`objective_refs` the 0-based indexes of the objectives it teaches, and every objective "
    "is taught somewhere. Section minutes add up to at most duration_minutes. Describe in "
    "`accessibility_features` how each accessibility need is met, and in `game_mechanics` "
    "the checkpoints, scoring and team size."
)
CRITERIA = (
    "objectives are the teacher's, or 2-4 derived ones at the grade's Bloom levels",
    "every section and activity links at least one existing objective",
    "every objective is taught by a section or an activity",
    "section minutes fit the lesson's duration",
    "each accessibility need has a matching feature",
)
TABLES = ("educational_content", "learning_objectives", "content_objectives")


class ContentAgent(AgentKind):
    """Writes the lesson plan and its objectives."""

    agent_type = "content"
    input_schema = ContentInput
    description = "Lesson plan with sections, activities, game mechanics and objectives."
    uses_model = True

    def run_phase(self, phase: Phase, ctx: PhaseContext) -> PhaseOutcome:
        payload = payload_as(ctx, ContentInput)
        match phase:
            case Phase.SITUATION:
                return self._situation(payload)
            case Phase.PROBLEM:
                return problem(
                    "a lesson plan with its learning objectives", LessonContent, CRITERIA
                )
            case Phase.ACTION:
                return self._action(ctx, payload)
            case Phase.RESULT:
                return self._result(ctx)
            case Phase.CONTEXT:
                return self._context(ctx, payload)

    @staticmethod
    def _situation(payload: ContentInput) -> PhaseOutcome:
        request = payload.request
        return situation(
            request, payload.revision_notes, objectives_given=len(request.learning_objectives)
        )

    def _action(self, ctx: PhaseContext, payload: ContentInput) -> PhaseOutcome:
        return ask_for(
            ctx,
            "content",
            LessonContent,
            payload,
            instructions=INSTRUCTIONS,
            what="the lesson plan",
        )

    @staticmethod
    def _result(ctx: PhaseContext) -> PhaseOutcome:
        content = stored(ctx, Phase.ACTION, "artifact", LessonContent)
        return result("content", content, check_content(content), tested=False, tables=TABLES)

    def _context(self, ctx: PhaseContext, payload: ContentInput) -> PhaseOutcome:
        request = payload.request
        return reflection(
            ctx,
            lessons=[f"objectives {'given' if request.learning_objectives else 'derived'}"],
            focus=[
                f"are the activities right for grade {request.grade_level}?",
                "do the objectives use measurable verbs?",
                *(f"is {need} really addressed?" for need in request.accessibility),
            ],
        )
