"""Writes an approved environment's artifacts, all in the caller's transaction.

Called once per workflow, when the review approves (``agents.workflow``): the
lesson, its objectives and links, the quiz with questions and options, the
terrain and the scripts appear together with ``educational_content.status =
'ready'``, or not at all.  A script that does not parse is refused here too,
so nothing unparsed is ever stored as valid.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.orm import Session

from agents.luau import check_luau
from agents.schemas import LessonContent, QuizSpec, ScriptBundle, TerrainSpec
from models import (
    EducationalContent,
    LearningObjective,
    Quiz,
    QuizOption,
    QuizQuestion,
    RobloxScript,
    RobloxTerrain,
)
from models.errors import ValidationFailed


def persist_environment(
    connection: Connection,
    *,
    workflow_id: uuid.UUID,
    outputs: Mapping[str, Mapping[str, Any]],
    created_by: uuid.UUID | None,
    reviewer_id: uuid.UUID | None,
    version: int,
) -> dict[str, Any]:
    """Store every artifact; return the ids of what was written."""
    content = LessonContent.model_validate(outputs["content"]["artifact"])
    session = Session(bind=connection)
    try:
        row = _content(content, outputs, workflow_id, created_by, version)
        session.add(row)
        session.flush()
        ids: dict[str, Any] = {"content_id": str(row.id)}
        if "quiz" in outputs:
            quiz = _quiz(QuizSpec.model_validate(outputs["quiz"]["artifact"]), row.id, created_by)
            session.add(quiz)
            session.flush()
            ids["quiz_id"] = str(quiz.id)
        if "terrain" in outputs:
            terrain = _terrain(outputs["terrain"], row.id, created_by)
            session.add(terrain)
            session.flush()
            ids["terrain_id"] = str(terrain.id)
        if "script" in outputs:
            scripts = _scripts(outputs["script"], row.id, created_by, reviewer_id)
            session.add_all(scripts)
            session.flush()
            ids["script_ids"] = [str(script.id) for script in scripts]
        ids["objective_ids"] = [str(objective.id) for objective in row.objectives]
        return ids
    finally:
        session.close()


def _content(
    content: LessonContent,
    outputs: Mapping[str, Mapping[str, Any]],
    workflow_id: uuid.UUID,
    created_by: uuid.UUID | None,
    version: int,
) -> EducationalContent:
    scripts = (
        ScriptBundle.model_validate(outputs["script"]["artifact"]) if "script" in outputs else None
    )
    terrain = outputs.get("terrain", {}).get("artifact")
    row = EducationalContent(
        title=content.title,
        description=content.description,
        subject=content.subject,
        grade_level=content.grade_level,
        environment_type=content.environment_type,
        terrain_size=content.terrain_size,
        difficulty_level=content.difficulty_level,
        duration_minutes=content.duration_minutes,
        max_students=content.max_students,
        content_data=content.model_dump(mode="json"),
        generated_scripts=[
            {"name": s.name, "script_type": s.script_type}
            for s in (scripts.scripts if scripts else [])
        ],
        terrain_config=None
        if terrain is None
        else {key: terrain[key] for key in ("name", "terrain_type", "material", "size", "biome")},
        game_mechanics=content.game_mechanics,
        accessibility_features=bool(content.accessibility_features),
        multilingual=content.language.split("-")[0] != "en",
        version=version,
        status="ready",
        workflow_id=workflow_id,
        created_by=created_by,
    )
    for objective in content.objectives:
        row.objectives.append(
            LearningObjective(
                title=objective.title,
                description=objective.description,
                subject=content.subject,
                grade_level=content.grade_level,
                bloom_level=objective.bloom_level,
                curriculum_standard=objective.curriculum_standard,
                measurable=objective.measurable,
            )
        )
    return row


def _quiz(spec: QuizSpec, content_id: uuid.UUID, created_by: uuid.UUID | None) -> Quiz:
    quiz = Quiz(
        title=spec.title,
        description=spec.description,
        subject=spec.subject,
        grade_level=spec.grade_level,
        content_id=content_id,
        time_limit=spec.time_limit_seconds,
        passing_score=spec.passing_score,
        max_attempts=spec.max_attempts,
        shuffle_questions=spec.shuffle_questions,
        shuffle_options=spec.shuffle_options,
        is_adaptive=spec.is_adaptive,
        difficulty_progression=(
            None
            if spec.difficulty_progression is None
            else spec.difficulty_progression.model_dump(mode="json")
        ),
        created_by=created_by,
    )
    for index, question in enumerate(spec.questions):
        row = QuizQuestion(
            question_type=question.question_type,
            question_text=question.question_text,
            correct_answer=question.correct_answer,
            difficulty=question.difficulty,
            points=question.points,
            time_limit=question.time_limit_seconds,
            hint=question.hint or None,
            explanation=question.explanation or None,
            order_index=index,
            question_data={"objective": question.objective},
        )
        for position, option in enumerate(question.options):
            row.options.append(
                QuizOption(
                    option_text=option.text,
                    is_correct=option.is_correct,
                    explanation=option.explanation or None,
                    order_index=position,
                )
            )
        quiz.questions.append(row)
    return quiz


def _terrain(
    output: Mapping[str, Any], content_id: uuid.UUID, created_by: uuid.UUID | None
) -> RobloxTerrain:
    spec = TerrainSpec.model_validate(output["artifact"])
    _require_parse(f"terrain {spec.name!r} generation_script", spec.generation_script)
    return RobloxTerrain(
        content_id=content_id,
        name=spec.name,
        terrain_type=spec.terrain_type,
        material=spec.material,
        size=spec.size,
        biome=spec.biome,
        features=[feature.model_dump(mode="json") for feature in spec.features],
        elevation_data=spec.elevation_data.model_dump(mode="json"),
        generation_script=spec.generation_script,
        complexity_score=spec.complexity_score,
        educational_context=spec.educational_context.model_dump(mode="json"),
        created_by=created_by,
    )


def _scripts(
    output: Mapping[str, Any],
    content_id: uuid.UUID,
    created_by: uuid.UUID | None,
    reviewer_id: uuid.UUID | None,
) -> list[RobloxScript]:
    bundle = ScriptBundle.model_validate(output["artifact"])
    results: Mapping[str, Any] = output.get("checks", {}).get("test_results", {})
    rows = []
    for script in bundle.scripts:
        check = _require_parse(f"script {script.name!r}", script.content)
        rows.append(
            RobloxScript(
                content_id=content_id,
                name=script.name,
                script_type=script.script_type,
                content=script.content,
                dependencies=list(script.dependencies),
                description=script.description or None,
                tested=True,
                test_results=dict(results.get(script.name, check)),
                created_by=created_by,
                reviewed_by=reviewer_id,
            )
        )
    return rows


def _require_parse(what: str, source: str) -> dict[str, Any]:
    check = check_luau(source)
    if not check.ok:
        where = "; ".join(f"line {e.line}: {e.message}" for e in check.errors[:5])
        raise ValidationFailed(f"{what} does not parse as Luau: {where}")
    return check.model_dump()
