"""The offline model's classroom side: objectives, the lesson plan and the quiz.

Objectives derived from a request do not depend on the prompt, so the content,
quiz and script agents, which run in parallel, agree on them.
"""

from __future__ import annotations

from random import Random
from typing import Any

from agents.offline_phrases import artifact_language, clip, language_of, phrase
from agents.offline_scripts import MECHANIC_BY_BLOOM, objective_ids
from agents.offline_world import stable_int, theme_for
from agents.schemas import (
    BLOOM_ORDER,
    Activity,
    ActivityKind,
    BloomLevel,
    Difficulty,
    DifficultyProgression,
    DifficultyRule,
    EnvironmentRequest,
    LessonContent,
    LessonSection,
    ObjectiveSpec,
    QuestionOption,
    QuestionSpec,
    QuestionType,
    QuizSpec,
    default_question_count,
    default_terrain_size,
)

_VERBS: dict[BloomLevel, tuple[str, ...]] = {
    "remember": ("identify", "list", "name", "recall", "define", "label", "identificar", "nommer"),
    "understand": ("explain", "describe", "summarize", "summarise", "classify", "explicar"),
    "apply": ("use", "apply", "calculate", "solve", "demonstrate", "measure", "usar", "utiliser"),
    "analyze": ("compare", "analyze", "analyse", "contrast", "examine", "comparar", "comparer"),
    "evaluate": ("evaluate", "judge", "justify", "argue", "assess", "critique", "juzgar"),
    "create": ("design", "create", "build", "compose", "invent", "plan", "dise\u00f1ar"),
}
_ACTIVITY_BY_BLOOM: dict[BloomLevel, ActivityKind] = {
    "remember": "collect",
    "understand": "explore",
    "apply": "build",
    "analyze": "experiment",
    "evaluate": "discuss",
    "create": "build",
}
_STANDARDS = (
    (("science", "biolog", "chemi", "physic", "earth", "ecolog"), "NGSS"),
    (("math", "algebra", "geometr", "statistic"), "CCSS Math"),
    (("english", "reading", "writing", "literature", "language arts", "ela"), "CCSS ELA"),
    (("history", "social", "geograph", "civic", "econom"), "C3 Framework"),
)
_ACCESSIBILITY_NOTES = {
    "screen_reader": "Every checkpoint and sign has a text description a screen reader can read.",
    "captions": "Narration and guide dialogue appear as on-screen captions.",
    "color_blind": "Blue/orange palette with shape cues instead of red/green signals.",
    "reduced_motion": "Tweens, camera shake and flashing effects are turned off.",
    "high_contrast": "High-contrast HUD: white text on black panels.",
    "large_text": "HUD and signs use large text.",
    "simplified_language": "Short sentences and a word bank at every station.",
}


_POINTS: dict[Difficulty, int] = {"easy": 1, "medium": 2, "hard": 3}


def grade_band(grade: int) -> int:
    """0 for grades 1-3, 1 for 4-6, 2 for 7-9, 3 for 10-12."""
    return (grade - 1) // 3


def difficulty_for(grade: int) -> Difficulty:
    return "easy" if grade <= 4 else "medium" if grade <= 8 else "hard"


def bloom_for(text: str, grade: int) -> BloomLevel:
    """The Bloom level named by an objective's verb, else the grade's entry level."""
    words = text.lower().split()
    first = words[0] if words else ""
    for level, verbs in _VERBS.items():
        if first in verbs or (len(words) > 1 and words[1] in verbs):
            return level
    return BLOOM_ORDER[grade_band(grade)]


def _standard(request: EnvironmentRequest) -> str | None:
    subject = request.subject.lower()
    for keywords, name in _STANDARDS:
        if any(word in subject for word in keywords):
            return f"{name}, grade {request.grade_level}"
    return None


def objectives_for(request: EnvironmentRequest) -> list[ObjectiveSpec]:
    """The teacher's objectives, or 2-4 derived from topic and grade."""
    standard = _standard(request)
    if request.learning_objectives:
        return [
            ObjectiveSpec(
                title=clip(text, 200),
                description=text,
                bloom_level=bloom_for(text, request.grade_level),
                curriculum_standard=standard,
            )
            for text in request.learning_objectives
        ]
    language = language_of(request.language)
    band = grade_band(request.grade_level)
    ceiling = band + 2
    count = min(2 + stable_int(request.topic.lower(), request.grade_level) % 3, ceiling + 1)
    first = max(0, min(band, ceiling + 1 - count))
    levels = BLOOM_ORDER[first : first + count]
    return [
        ObjectiveSpec(
            title=clip(phrase(language, f"obj_{level}", topic=request.topic), 200),
            description=f"{level.capitalize()}: {request.topic} ({request.subject}, "
            f"grade {request.grade_level})",
            bloom_level=level,
            curriculum_standard=standard,
        )
        for level in levels
    ]


def _split(total: int, weights: tuple[int, ...]) -> list[int]:
    parts = [max(1, total * w // sum(weights)) for w in weights]
    parts[-1] = max(1, total - sum(parts[:-1]))
    return parts


def _activity(
    language: str, request: EnvironmentRequest, index: int, objective: ObjectiveSpec, minutes: int
) -> Activity:
    kind = _ACTIVITY_BY_BLOOM[objective.bloom_level]
    mechanic = MECHANIC_BY_BLOOM[objective.bloom_level]
    return Activity(
        title=clip(f"{mechanic}: {objective.title}", 120),
        kind=kind,
        instructions=phrase(language, f"act_{kind}", topic=request.topic, goal=objective.title),
        duration_minutes=minutes,
        objective_refs=[index],
    )


def lesson_content(request: EnvironmentRequest, rng: Random) -> LessonContent:
    language = language_of(request.language)
    theme = theme_for(request)
    objectives = objectives_for(request)
    world = theme.environment_type.replace("_", " ")
    values = {
        "topic": request.topic,
        "subject": request.subject,
        "grade": request.grade_level,
        "minutes": request.duration_minutes,
        "world": world,
    }
    intro, explore, challenge, reflect = _split(request.duration_minutes, (2, 4, 4, 2))
    every = list(range(len(objectives)))
    half = max(1, (len(objectives) + 1) // 2)
    explore_refs, challenge_refs = every[:half], every[half:] or every[-1:]
    sections = [
        LessonSection(
            title=clip(phrase(language, "intro", **values), 120),
            summary=phrase(language, "intro_sum", **values),
            duration_minutes=intro,
            objective_refs=[0],
        ),
        LessonSection(
            title=clip(phrase(language, "explore", **values), 120),
            summary=phrase(language, "explore_sum", **values),
            duration_minutes=explore,
            objective_refs=explore_refs,
            activities=[
                _activity(language, request, i, objectives[i], max(1, explore // len(explore_refs)))
                for i in explore_refs
            ],
        ),
        LessonSection(
            title=clip(phrase(language, "challenge", **values), 120),
            summary=phrase(language, "challenge_sum", **values),
            duration_minutes=challenge,
            objective_refs=challenge_refs,
            activities=[
                _activity(
                    language, request, i, objectives[i], max(1, challenge // len(challenge_refs))
                )
                for i in challenge_refs
            ],
        ),
        LessonSection(
            title=clip(phrase(language, "reflect", **values), 120),
            summary=phrase(language, "reflect_sum", **values),
            duration_minutes=reflect,
            objective_refs=every,
            activities=[
                Activity(
                    title=clip(phrase(language, "reflect", **values), 120),
                    kind="reflect",
                    instructions=phrase(language, "act_reflect", **values),
                    duration_minutes=reflect,
                    objective_refs=every,
                )
            ],
        ),
    ]
    team_size = 1 if request.max_students <= 4 else 2 + rng.randint(0, 2)
    return LessonContent(
        title=clip(phrase(language, "lesson_title", **values), 200),
        description=phrase(language, "lesson_desc", **values),
        subject=request.subject,
        grade_level=request.grade_level,
        language=artifact_language(request.language),
        environment_type=theme.environment_type,
        terrain_size=default_terrain_size(request),
        difficulty_level=difficulty_for(request.grade_level),
        duration_minutes=request.duration_minutes,
        max_students=request.max_students,
        objectives=objectives,
        sections=sections,
        game_mechanics={
            "checkpoints": [
                {
                    "objective_ref": i,
                    "name": f"{MECHANIC_BY_BLOOM[o.bloom_level]}_{ident}",
                    "points": 10 * (1 + BLOOM_ORDER.index(o.bloom_level)),
                }
                for i, (o, ident) in enumerate(
                    zip(objectives, objective_ids([o.title for o in objectives]), strict=True)
                )
            ],
            "team_size": team_size,
            "adaptive_difficulty": request.adaptive,
            "reduced_motion": "reduced_motion" in request.accessibility,
        },
        accessibility_features=[_ACCESSIBILITY_NOTES[n] for n in request.accessibility],
    )


def _question_types(grade: int) -> tuple[QuestionType, ...]:
    return (
        ("true_false", "multiple_choice"),
        ("multiple_choice", "true_false", "multi_select"),
        ("multiple_choice", "multi_select", "true_false", "short_answer"),
        ("multiple_choice", "multi_select", "short_answer", "short_answer"),
    )[grade_band(grade)]


def _difficulty(index: int, count: int, grade: int) -> Difficulty:
    steps: tuple[Difficulty, ...] = ("easy", "medium", "hard")
    raw = min(2, 3 * index // count)
    band = grade_band(grade)
    return steps[max(0 if band < 3 else 1, min(raw, 1 if band == 0 else 2))]


def _options(
    language: str, keys: list[tuple[str, bool]], rng: Random, values: dict[str, Any]
) -> list[QuestionOption]:
    options = [
        QuestionOption(
            text=clip(phrase(language, key, **values), 500),
            is_correct=right,
            explanation=phrase(language, "right_why" if right else "wrong_why", **values),
        )
        for key, right in keys
    ]
    rng.shuffle(options)
    return options


def _question(
    kind: QuestionType,
    language: str,
    values: dict[str, Any],
    rng: Random,
    difficulty: Difficulty,
    grade: int,
) -> QuestionSpec:
    if kind == "multiple_choice":
        keys = [
            ("mc_right", True),
            ("mc_wrong_1", False),
            ("mc_wrong_2", False),
            ("mc_wrong_3", False),
        ]
        options = _options(language, keys, rng, values)
        text, answer = phrase(language, "mc_q", **values), phrase(language, "mc_right", **values)
    elif kind == "multi_select":
        keys = [
            ("ms_right_1", True),
            ("ms_right_2", True),
            ("ms_wrong_1", False),
            ("ms_wrong_2", False),
        ]
        options = _options(language, keys, rng, values)
        text = phrase(language, "ms_q", **values)
        answer = "; ".join(o.text for o in options if o.is_correct)
    elif kind == "true_false":
        truth = rng.random() < 0.5
        text = phrase(language, "tf_true" if truth else "tf_false", **values)
        why = phrase(language, "tf_why_true" if truth else "tf_why_false", **values)
        options = [
            QuestionOption(text="True", is_correct=truth, explanation=why),
            QuestionOption(text="False", is_correct=not truth, explanation=why),
        ]
        answer = "True" if truth else "False"
    else:
        options = []
        text, answer = phrase(language, "sa_q", **values), phrase(language, "sa_answer", **values)
    return QuestionSpec(
        question_type=kind,
        question_text=clip(text, 1000),
        correct_answer=clip(answer, 500),
        options=options,
        hint=clip(phrase(language, "hint", **values), 500),
        explanation=clip(phrase(language, "explanation", **values), 2000),
        objective=clip(str(values["goal"]), 300),
        difficulty=difficulty,
        points=_POINTS[difficulty],
        time_limit_seconds=30 + 10 * _POINTS[difficulty] + 5 * grade_band(grade),
    )


def quiz_spec(request: EnvironmentRequest, inputs: dict[str, Any], rng: Random) -> QuizSpec:
    language = language_of(request.language)
    given = [ObjectiveSpec.model_validate(o) for o in inputs.get("objectives") or []]
    goals = [o.title for o in given or objectives_for(request)]
    count = int(inputs.get("question_count") or default_question_count(request))
    kinds = _question_types(request.grade_level)
    offset = rng.randrange(len(kinds))
    questions = []
    for index in range(count):
        values = {
            "topic": request.topic,
            "subject": request.subject,
            "goal": goals[index % len(goals)],
        }
        difficulty = _difficulty(index, count, request.grade_level)
        kind = kinds[(index + offset) % len(kinds)]
        questions.append(_question(kind, language, values, rng, difficulty, request.grade_level))
    progression = None
    if request.adaptive:
        streak = 3 if request.grade_level <= 3 else 2
        progression = DifficultyProgression(
            start="easy" if request.grade_level <= 6 else "medium",
            rules=[
                DifficultyRule(trigger="correct_streak", threshold=streak, action="harder"),
                DifficultyRule(trigger="incorrect_streak", threshold=2, action="easier"),
            ],
        )
    about: dict[str, object] = {
        "topic": request.topic,
        "count": count,
        "grade": request.grade_level,
    }
    return QuizSpec(
        title=clip(phrase(language, "quiz_title", **about), 200),
        description=phrase(language, "quiz_desc", **about),
        subject=request.subject,
        grade_level=request.grade_level,
        language=artifact_language(request.language),
        passing_score=60 if request.grade_level <= 3 else 70,
        time_limit_seconds=max(60, sum(q.time_limit_seconds or 0 for q in questions)),
        is_adaptive=request.adaptive,
        difficulty_progression=progression,
        total_points=sum(q.points for q in questions),
        questions=questions,
    )
