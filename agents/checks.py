"""Rule checks of the artifacts: pure functions returning issues, no model involved.

An issue is one string ``"<artifact>.<field>: <reason>"`` (``split_issue``
takes it apart), so it reads well in logs and maps onto a review issue.  The
artifact agents run the checks of their own artifact in their result phase;
the review agent runs all of them before it asks a model for a judgement.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agents.luau import LuauCheck, check_luau
from agents.schemas import (
    ALL_ARTIFACTS,
    ArtifactName,
    LessonContent,
    QuestionSpec,
    QuizSpec,
    ReviewInput,
    ScriptSpec,
    TerrainSpec,
)

TERRAIN_APIS = ("FillBlock", "FillBall", "FillRegion", "FillCylinder", "FillWedge")
_ARTIFACTS: dict[str, ArtifactName] = {name: name for name in ALL_ARTIFACTS}


def split_issue(issue: str) -> tuple[ArtifactName, str, str]:
    """``(artifact, field, reason)`` of an issue string made by this module."""
    where, _, reason = issue.partition(": ")
    name, _, field = where.partition(".")
    artifact = _ARTIFACTS.get(name)
    if artifact is None:
        raise ValueError(f"not an issue of this module: {issue!r}")
    return artifact, field or name, reason or where


def _grade(artifact: str, grade: int) -> list[str]:
    if 1 <= grade <= 12:
        return []
    return [f"{artifact}.grade_level: {grade} is outside grades 1-12"]


def check_content(content: LessonContent) -> list[str]:
    """Grade in range, every section and activity linked to existing objectives, time fits."""
    issues = _grade("content", content.grade_level)
    count = len(content.objectives)
    linked: set[int] = set()
    items = [
        (f"sections[{s}]", section.objective_refs) for s, section in enumerate(content.sections)
    ]
    items += [
        (f"sections[{s}].activities[{a}]", activity.objective_refs)
        for s, section in enumerate(content.sections)
        for a, activity in enumerate(section.activities)
    ]
    for where, refs in items:
        if not refs:
            issues.append(f"content.{where}.objective_refs: links no learning objective")
        bad = [ref for ref in refs if ref >= count]
        if bad:
            issues.append(f"content.{where}.objective_refs: {bad} not among the {count} objectives")
        linked.update(ref for ref in refs if ref < count)
    issues += [
        f"content.objectives[{i}]: no section or activity teaches {content.objectives[i].title!r}"
        for i in range(count)
        if i not in linked
    ]
    planned = sum(section.duration_minutes for section in content.sections)
    if planned > content.duration_minutes:
        issues.append(
            f"content.sections: {planned} minutes planned, "
            f"the lesson lasts {content.duration_minutes}"
        )
    return issues


def _question_issues(where: str, question: QuestionSpec) -> list[str]:
    issues = []
    correct = [option for option in question.options if option.is_correct]
    texts = [option.text.strip().lower() for option in question.options]
    kind = question.question_type
    if kind == "multiple_choice" and (len(question.options) < 2 or len(correct) != 1):
        issues.append(
            f"{where}.options: multiple choice needs at least two options and exactly one "
            f"correct, found {len(question.options)} with {len(correct)} correct"
        )
    if kind == "multi_select" and (len(question.options) < 2 or not correct):
        issues.append(
            f"{where}.options: multi-select needs two or more options, one or more correct"
        )
    if kind == "true_false" and (sorted(texts) != ["false", "true"] or len(correct) != 1):
        issues.append(f'{where}.options: true/false needs exactly "True" and "False", one correct')
    if kind == "short_answer" and question.options:
        issues.append(f"{where}.options: a short answer question has no options")
    if len(set(texts)) != len(texts):
        issues.append(f"{where}.options: two options have the same text")
    if kind in ("multiple_choice", "true_false") and len(correct) == 1:
        if correct[0].text.strip().lower() != question.correct_answer.strip().lower():
            issues.append(f"{where}.correct_answer: does not match the correct option")
    if not question.explanation.strip():
        issues.append(f"{where}.explanation: missing")
    if question.points <= 0:
        issues.append(f"{where}.points: must be positive, got {question.points}")
    return issues


def check_quiz(quiz: QuizSpec) -> list[str]:
    """Options per question type, explanations, positive points adding up, adaptive rules."""
    issues = _grade("quiz", quiz.grade_level)
    for index, question in enumerate(quiz.questions):
        issues += _question_issues(f"quiz.questions[{index}]", question)
    total = sum(question.points for question in quiz.questions)
    if quiz.total_points is not None and total != quiz.total_points:
        issues.append(
            f"quiz.total_points: declared {quiz.total_points}, questions add up to {total}"
        )
    if quiz.is_adaptive and quiz.difficulty_progression is None:
        issues.append("quiz.difficulty_progression: an adaptive quiz needs progression rules")
    return issues


def check_terrain(terrain: TerrainSpec, result: LuauCheck | None = None) -> list[str]:
    """The generation script parses and shapes ``workspace.Terrain``."""
    result = result or check_luau(terrain.generation_script)
    issues = [
        f"terrain.generation_script: line {e.line} column {e.column}: {e.message}"
        for e in result.errors
    ]
    if not any(api in terrain.generation_script for api in TERRAIN_APIS):
        issues.append(
            f"terrain.generation_script: calls none of the Terrain APIs {', '.join(TERRAIN_APIS)}"
        )
    return issues


def check_scripts(
    scripts: Sequence[ScriptSpec], results: Mapping[str, LuauCheck] | None = None
) -> list[str]:
    """Every script parses, names are unique, dependencies name modules of the bundle."""
    issues = []
    names = [script.name for script in scripts]
    modules = {script.name for script in scripts if script.script_type == "module"}
    for name in sorted({n for n in names if names.count(n) > 1}):
        issues.append(f"script.{name}.name: used by {names.count(name)} scripts")
    for script in scripts:
        result = (results or {}).get(script.name) or check_luau(script.content)
        issues += [
            f"script.{script.name}.content: line {e.line} column {e.column}: {e.message}"
            for e in result.errors
        ]
        missing = [dep for dep in script.dependencies if dep not in modules]
        if missing:
            issues.append(
                f"script.{script.name}.dependencies: {missing} are not module scripts of the bundle"
            )
    return issues


def check_review_input(review: ReviewInput) -> dict[ArtifactName, list[str]]:
    """All rule checks, plus presence of the requested artifacts and grade agreement."""
    request = review.request
    found: dict[ArtifactName, list[str]] = {}
    present = {
        "content": review.content is not None,
        "quiz": review.quiz is not None,
        "terrain": review.terrain is not None,
        "script": bool(review.scripts),
    }
    for name in request.artifacts:
        if not present[name]:
            found.setdefault(name, []).append(f"{name}.artifact: requested but not produced")
    if review.content is not None:
        found.setdefault("content", []).extend(check_content(review.content))
    if review.quiz is not None:
        found.setdefault("quiz", []).extend(check_quiz(review.quiz))
    graded: list[tuple[ArtifactName, LessonContent | QuizSpec | None]] = [
        ("content", review.content),
        ("quiz", review.quiz),
    ]
    for name, artifact in graded:
        if artifact is not None and artifact.grade_level != request.grade_level:
            found.setdefault(name, []).append(
                f"{name}.grade_level: {artifact.grade_level} but the class is grade "
                f"{request.grade_level}"
            )
    if review.terrain is not None:
        found.setdefault("terrain", []).extend(check_terrain(review.terrain))
    if review.scripts:
        found.setdefault("script", []).extend(check_scripts(review.scripts))
    return {name: issues for name, issues in found.items() if issues}
