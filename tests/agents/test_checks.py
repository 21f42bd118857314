"""Each rule check catches its violation, and offline artifacts pass them all."""

from __future__ import annotations

from random import Random

import pytest

from agents.checks import (
    check_content,
    check_quiz,
    check_review_input,
    check_scripts,
    check_terrain,
    split_issue,
)
from agents.offline_lesson import lesson_content, quiz_spec
from agents.offline_scripts import script_bundle
from agents.offline_world import terrain_spec
from agents.schemas import (
    EnvironmentRequest,
    LessonContent,
    QuestionOption,
    QuestionSpec,
    QuizSpec,
    ReviewInput,
    ScriptSpec,
)

REQUEST = EnvironmentRequest(
    subject="Science", grade_level=8, topic="Volcanoes", adaptive=True, duration_minutes=40
)


@pytest.fixture
def content() -> LessonContent:
    return lesson_content(REQUEST, Random(1))


@pytest.fixture
def quiz() -> QuizSpec:
    return quiz_spec(REQUEST, {"question_count": 8}, Random(1))


def _question(quiz: QuizSpec, kind: str) -> tuple[int, QuestionSpec]:
    return next((i, q) for i, q in enumerate(quiz.questions) if q.question_type == kind)


def _with_question(quiz: QuizSpec, index: int, **changes: object) -> QuizSpec:
    questions = list(quiz.questions)
    questions[index] = questions[index].model_copy(update=changes)
    return quiz.model_copy(update={"questions": questions})


def _one(issues: list[str], fragment: str) -> str:
    found = [issue for issue in issues if fragment in issue]
    assert found, issues
    return found[0]


def test_offline_artifacts_pass(content: LessonContent, quiz: QuizSpec) -> None:
    assert check_content(content) == []
    assert check_quiz(quiz) == []
    assert check_terrain(terrain_spec(REQUEST, {}, Random(1))) == []
    assert (
        check_scripts(script_bundle(REQUEST, [("Explain eruptions", "understand")]).scripts) == []
    )


def test_multiple_choice_needs_exactly_one_correct(quiz: QuizSpec) -> None:
    index, question = _question(quiz, "multiple_choice")
    all_right = [o.model_copy(update={"is_correct": True}) for o in question.options]
    none_right = [o.model_copy(update={"is_correct": False}) for o in question.options]
    for options in (all_right, none_right):
        issue = _one(check_quiz(_with_question(quiz, index, options=options)), "exactly one")
        assert issue.startswith(f"quiz.questions[{index}].options:")


def test_multi_select_needs_a_correct_option(quiz: QuizSpec) -> None:
    index, question = _question(quiz, "multi_select")
    options = [o.model_copy(update={"is_correct": False}) for o in question.options]
    _one(check_quiz(_with_question(quiz, index, options=options)), "multi-select")


def test_true_false_needs_true_and_false(quiz: QuizSpec) -> None:
    index, _ = _question(quiz, "true_false")
    yes_no = [
        QuestionOption(text="Yes", is_correct=True, explanation="x"),
        QuestionOption(text="No", is_correct=False, explanation="x"),
    ]
    both = [
        QuestionOption(text="True", is_correct=True, explanation="x"),
        QuestionOption(text="False", is_correct=True, explanation="x"),
    ]
    for options in (yes_no, both):
        _one(check_quiz(_with_question(quiz, index, options=options)), '"True" and "False"')


def test_correct_answer_must_match_the_option(quiz: QuizSpec) -> None:
    index, _ = _question(quiz, "multiple_choice")
    issues = check_quiz(_with_question(quiz, index, correct_answer="something else"))
    _one(issues, f"quiz.questions[{index}].correct_answer")


def test_every_question_needs_an_explanation(quiz: QuizSpec) -> None:
    _one(check_quiz(_with_question(quiz, 2, explanation="  ")), "quiz.questions[2].explanation")


def test_points_positive_and_adding_up(quiz: QuizSpec) -> None:
    _one(check_quiz(_with_question(quiz, 0, points=0)), "quiz.questions[0].points")
    wrong_total = quiz.model_copy(update={"total_points": (quiz.total_points or 0) + 1})
    _one(check_quiz(wrong_total), "quiz.total_points")
    assert check_quiz(quiz.model_copy(update={"total_points": None})) == []


def test_adaptive_quiz_needs_progression(quiz: QuizSpec) -> None:
    issues = check_quiz(quiz.model_copy(update={"difficulty_progression": None}))
    _one(issues, "quiz.difficulty_progression")


def test_grade_levels_within_range(content: LessonContent, quiz: QuizSpec) -> None:
    _one(check_content(content.model_copy(update={"grade_level": 13})), "content.grade_level")
    _one(check_quiz(quiz.model_copy(update={"grade_level": 0})), "quiz.grade_level")


def test_content_items_link_objectives(content: LessonContent) -> None:
    sections = [s.model_copy(deep=True) for s in content.sections]
    sections[0].objective_refs = []
    sections[1].activities[0].objective_refs = [99]
    issues = check_content(content.model_copy(update={"sections": sections}))
    _one(issues, "content.sections[0].objective_refs: links no learning objective")
    _one(issues, "content.sections[1].activities[0].objective_refs: [99]")


def test_every_objective_is_taught(content: LessonContent) -> None:
    extra = content.objectives[0].model_copy(update={"title": "Never taught"})
    issues = check_content(content.model_copy(update={"objectives": [*content.objectives, extra]}))
    _one(issues, "'Never taught'")


def test_sections_fit_the_duration(content: LessonContent) -> None:
    _one(check_content(content.model_copy(update={"duration_minutes": 5})), "content.sections:")


def test_scripts_must_parse_and_resolve(content: LessonContent) -> None:
    good = script_bundle(REQUEST, [("Explain eruptions", "understand")]).scripts
    broken = [*good[:1], good[1].model_copy(update={"content": "local x = (\n"})]
    _one(check_scripts(broken), f"script.{good[1].name}.content: line")
    twice = [*good, good[0]]
    _one(check_scripts(twice), "script.LessonConfig.name")
    orphan = ScriptSpec(
        name="Extra", script_type="server", content="print(1)", dependencies=["Nope"]
    )
    _one(check_scripts([*good, orphan]), "script.Extra.dependencies")


def test_terrain_script_must_parse_and_use_terrain() -> None:
    terrain = terrain_spec(REQUEST, {}, Random(1))
    broken = terrain.model_copy(
        update={"generation_script": terrain.generation_script + "\nend end"}
    )
    _one(check_terrain(broken), "terrain.generation_script: line")
    inert = terrain.model_copy(update={"generation_script": "print('no terrain work at all here')"})
    _one(check_terrain(inert), "calls none of the Terrain APIs")


def test_review_input_checks_presence_and_grade(content: LessonContent, quiz: QuizSpec) -> None:
    review = ReviewInput(request=REQUEST, content=content.model_copy(update={"grade_level": 3}))
    found = check_review_input(review)
    assert "quiz.artifact: requested but not produced" in found["quiz"]
    assert "terrain" in found and "script" in found
    _one(found["content"], "content.grade_level: 3 but the class is grade 8")


def test_split_issue_round_trip() -> None:
    assert split_issue("quiz.questions[2].options: two right") == (
        "quiz",
        "questions[2].options",
        "two right",
    )
    with pytest.raises(ValueError, match="not an issue"):
        split_issue("plan.children[0]: bad")
