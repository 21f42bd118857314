"""Quiz agent: an assessment of the lesson's objectives, adaptive when asked."""

from __future__ import annotations

from agents.base import AgentKind, Phase, PhaseContext, PhaseOutcome
from agents.checks import check_quiz
from agents.phases import (
    ask_for,
    payload_as,
    problem,
    reflection,
    result,
    situation,
    stored,
)
from agents.schemas import QuizInput, QuizSpec, default_question_count

INSTRUCTIONS = (
    "Write a quiz of `inputs.question_count` questions that assesses `inputs.objectives` "
    "(or the request's learning_objectives, or objectives you derive from the topic when "
    "both are empty); set each question's `objective` to the objective it assesses. "
    "multiple_choice: exactly one correct option; multi_select: one or more; true_false: "
    'exactly the options "True" and "False", one correct; short_answer: no options. Every '
    "question has an explanation, every option explains why it is right or wrong, points "
    "are positive and `total_points` is their sum. Difficulty rises through the quiz and "
    "with the grade. If the request is adaptive, set `is_adaptive` and "
    "`difficulty_progression`."
)
TABLES = ("quizzes", "quiz_questions", "quiz_options")


class QuizAgent(AgentKind):
    """Writes the quiz and checks its answer keys and points."""

    agent_type = "quiz"
    input_schema = QuizInput
    description = "Quiz with answer keys, explanations, points and adaptive rules."
    uses_model = True

    def run_phase(self, phase: Phase, ctx: PhaseContext) -> PhaseOutcome:
        payload = payload_as(ctx, QuizInput)
        match phase:
            case Phase.SITUATION:
                return self._situation(payload)
            case Phase.PROBLEM:
                return self._problem(payload)
            case Phase.ACTION:
                return self._action(ctx, payload)
            case Phase.RESULT:
                return self._result(ctx, payload)
            case Phase.CONTEXT:
                return self._context(ctx, payload)

    @staticmethod
    def _count(payload: QuizInput) -> int:
        return payload.question_count or default_question_count(payload.request)

    def _situation(self, payload: QuizInput) -> PhaseOutcome:
        return situation(
            payload.request,
            payload.revision_notes,
            question_count=self._count(payload),
            objectives=[o.title for o in payload.objectives] or payload.request.learning_objectives,
        )

    def _problem(self, payload: QuizInput) -> PhaseOutcome:
        criteria = [
            f"{self._count(payload)} questions, each assessing a named objective",
            "multiple choice: one correct option; multi-select: at least one; "
            "true/false: exactly True and False",
            "every question has an explanation; points positive and adding up to total_points",
        ]
        if payload.request.adaptive:
            criteria.append("adaptive: difficulty_progression with rules")
        return problem("a quiz on the lesson's objectives", QuizSpec, criteria)

    def _action(self, ctx: PhaseContext, payload: QuizInput) -> PhaseOutcome:
        return ask_for(
            ctx,
            "quiz",
            QuizSpec,
            payload,
            instructions=INSTRUCTIONS,
            what="the quiz",
            inputs={
                "question_count": self._count(payload),
                "objectives": [o.model_dump(mode="json") for o in payload.objectives],
            },
        )

    def _result(self, ctx: PhaseContext, payload: QuizInput) -> PhaseOutcome:
        quiz = stored(ctx, Phase.ACTION, "artifact", QuizSpec)
        issues = check_quiz(quiz)
        if len(quiz.questions) != self._count(payload):
            issues.append(
                f"quiz.questions: {len(quiz.questions)} questions, {self._count(payload)} asked"
            )
        return result("quiz", quiz, issues, tested=False, tables=TABLES)

    def _context(self, ctx: PhaseContext, payload: QuizInput) -> PhaseOutcome:
        quiz = stored(ctx, Phase.RESULT, "artifact", QuizSpec)
        mix = sorted({q.question_type for q in quiz.questions})
        return reflection(
            ctx,
            lessons=[f"question types used: {', '.join(mix)}"],
            focus=[
                "are the distractors plausible but clearly wrong?",
                f"is the reading level right for grade {payload.request.grade_level}?",
                "does every objective get at least one question?",
            ],
        )
