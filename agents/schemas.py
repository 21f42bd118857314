"""Pydantic schemas of the agent kinds: what a teacher asks for and what agents produce.

Schemas hold the shape (types, lengths, ranges, enumerations); rules that relate
fields to each other (one correct option, points adding up, objectives linked)
live in ``agents.checks`` so a reviewer can report them instead of a parser
rejecting the whole artifact.  The class docstrings double as tool descriptions
for real chat models, so they say what the object is for.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictInt,
    StringConstraints,
    field_validator,
)

ArtifactName = Literal["content", "quiz", "terrain", "script"]
ALL_ARTIFACTS: tuple[ArtifactName, ...] = ("content", "quiz", "terrain", "script")
BloomLevel = Literal["remember", "understand", "apply", "analyze", "evaluate", "create"]
BLOOM_ORDER: tuple[BloomLevel, ...] = (
    "remember",
    "understand",
    "apply",
    "analyze",
    "evaluate",
    "create",
)
Difficulty = Literal["easy", "medium", "hard"]
TerrainSize = Literal["small", "medium", "large"]
AccessibilityNeed = Literal[
    "screen_reader",
    "captions",
    "color_blind",
    "reduced_motion",
    "high_contrast",
    "large_text",
    "simplified_language",
]
QuestionType = Literal["multiple_choice", "multi_select", "true_false", "short_answer"]
ScriptType = Literal["server", "client", "module"]
ActivityKind = Literal[
    "explore", "collect", "build", "experiment", "discuss", "challenge", "reflect"
]
FeatureKind = Literal[
    "hill", "mountain", "valley", "water", "river", "cave", "crater", "plateau", "path"
]
TerrainMaterial = Literal[
    "Asphalt",
    "Basalt",
    "Brick",
    "Cobblestone",
    "Concrete",
    "CrackedLava",
    "Glacier",
    "Grass",
    "Ground",
    "Ice",
    "LeafyGrass",
    "Limestone",
    "Mud",
    "Pavement",
    "Rock",
    "Salt",
    "Sand",
    "Sandstone",
    "Slate",
    "Snow",
    "WoodPlanks",
]
"""``Enum.Material`` names that ``workspace.Terrain`` can fill with (Water via features)."""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_BREAKS = re.compile(r"[\t\n\v\f\r]+")


def _one_printable_line(value: str) -> str:
    """A teacher's line of text, as titles on screens, in Roblox and in an LMS need it: tabs
    and line breaks (a pasted cell) become one space; any other control character (a
    terminal escape sequence) is refused."""
    found = _CONTROL.search(value)
    if found:
        raise ValueError(
            f"holds the control character {found.group()!r} at position {found.start() + 1};"
            " give printable text"
        )
    return _BREAKS.sub(" ", value)


RequestLine = Annotated[str, AfterValidator(_one_printable_line)]
Objective = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=300),
    AfterValidator(_one_printable_line),
]
"""A ``RequestLine`` of 3 to 300 characters.  The limits come before the validator, as
``Field``'s do on the other lines: after it, pydantic counted them as a list's
(``Value should have at most 300 items after validation, not 5000``)."""
LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})*$"


def _unique(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class EnvironmentRequest(BaseModel):
    """A teacher's request for a Roblox learning environment."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    subject: RequestLine = Field(min_length=2, max_length=50)
    # strict: True is no grade 1, "yes" no adaptive (pydantic's lax mode took both)
    grade_level: StrictInt = Field(ge=1, le=12)
    topic: RequestLine = Field(min_length=2, max_length=200)
    learning_objectives: list[Objective] = Field(default_factory=list, max_length=10)
    duration_minutes: StrictInt = Field(default=30, ge=5, le=240)
    max_students: StrictInt = Field(default=30, ge=1, le=100)
    accessibility: list[AccessibilityNeed] = Field(default_factory=list)
    language: str = Field(default="en", pattern=LANGUAGE_PATTERN)
    adaptive: StrictBool = False
    artifacts: list[ArtifactName] = Field(default_factory=lambda: list(ALL_ARTIFACTS), min_length=1)

    @field_validator("accessibility", "artifacts")
    @classmethod
    def _dedupe(cls, value: list[str]) -> list[str]:
        return _unique(value)

    @field_validator("language")
    @classmethod
    def _normalise_language(cls, value: str) -> str:
        primary, *rest = value.split("-")
        return "-".join([primary.lower(), *rest])


class ObjectiveSpec(BaseModel):
    """One measurable learning objective, aligned to Bloom's taxonomy."""

    title: str = Field(min_length=3, max_length=200)
    description: str = Field(default="", max_length=1000)
    bloom_level: BloomLevel
    curriculum_standard: str | None = Field(default=None, max_length=100)
    measurable: bool = True


class Activity(BaseModel):
    """Something students do in the Roblox world; ``objective_refs`` index ``objectives``."""

    title: str = Field(min_length=3, max_length=120)
    kind: ActivityKind
    instructions: str = Field(min_length=10, max_length=1000)
    duration_minutes: int = Field(ge=1, le=120)
    objective_refs: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)


class LessonSection(BaseModel):
    """A stage of the lesson; ``objective_refs`` index the lesson's ``objectives``."""

    title: str = Field(min_length=3, max_length=120)
    summary: str = Field(min_length=10, max_length=1500)
    duration_minutes: int = Field(ge=1, le=240)
    objective_refs: list[Annotated[int, Field(ge=0)]] = Field(default_factory=list)
    activities: list[Activity] = Field(default_factory=list, max_length=8)


class LessonContent(BaseModel):
    """The lesson plan of a Roblox learning environment, with its objectives."""

    title: str = Field(min_length=3, max_length=200)
    description: str = Field(min_length=10, max_length=2000)
    subject: str = Field(min_length=2, max_length=50)
    grade_level: int = Field(ge=1, le=12)
    language: str = Field(pattern=LANGUAGE_PATTERN)
    environment_type: str = Field(min_length=3, max_length=50)
    terrain_size: TerrainSize = "medium"
    difficulty_level: Difficulty
    duration_minutes: int = Field(ge=5, le=240)
    max_students: int = Field(ge=1, le=100)
    objectives: list[ObjectiveSpec] = Field(min_length=1, max_length=10)
    sections: list[LessonSection] = Field(min_length=1, max_length=12)
    game_mechanics: dict[str, Any] = Field(default_factory=dict)
    accessibility_features: list[ShortText] = Field(default_factory=list, max_length=10)


class QuestionOption(BaseModel):
    """An answer option; ``explanation`` says why it is right or wrong."""

    text: str = Field(min_length=1, max_length=500)
    is_correct: bool
    explanation: str = Field(default="", max_length=1000)


class QuestionSpec(BaseModel):
    """One quiz question; short answers have no options."""

    question_type: QuestionType
    question_text: str = Field(min_length=5, max_length=1000)
    correct_answer: str = Field(min_length=1, max_length=500)
    options: list[QuestionOption] = Field(default_factory=list, max_length=8)
    hint: str = Field(default="", max_length=500)
    explanation: str = Field(default="", max_length=2000)
    points: int = Field(default=1, ge=0, le=100)
    difficulty: Difficulty = "medium"
    objective: str | None = Field(default=None, max_length=300)
    time_limit_seconds: int | None = Field(default=None, ge=5, le=600)


class DifficultyRule(BaseModel):
    """After ``threshold`` answers in a row of the given kind, move difficulty one step."""

    trigger: Literal["correct_streak", "incorrect_streak"]
    threshold: int = Field(ge=1, le=10)
    action: Literal["harder", "easier"]


class DifficultyProgression(BaseModel):
    """Adaptive rules: where a student starts and how difficulty moves."""

    start: Difficulty
    rules: list[DifficultyRule] = Field(min_length=1, max_length=6)


class QuizSpec(BaseModel):
    """An assessment of the lesson's objectives."""

    title: str = Field(min_length=3, max_length=200)
    description: str = Field(default="", max_length=2000)
    subject: str = Field(min_length=2, max_length=50)
    grade_level: int = Field(ge=1, le=12)
    language: str = Field(pattern=LANGUAGE_PATTERN)
    passing_score: int = Field(default=70, ge=0, le=100)
    time_limit_seconds: int | None = Field(default=None, ge=60, le=14400)
    max_attempts: int = Field(default=3, ge=1, le=10)
    shuffle_questions: bool = True
    shuffle_options: bool = True
    is_adaptive: bool = False
    difficulty_progression: DifficultyProgression | None = None
    total_points: int | None = Field(default=None, ge=1, le=5000)
    questions: list[QuestionSpec] = Field(min_length=1, max_length=50)


class HeightMap(BaseModel):
    """A coarse height map in studs, row by row (north to south)."""

    cell_size_studs: int = Field(ge=4, le=64)
    heights: list[list[Annotated[int, Field(ge=0, le=500)]]] = Field(min_length=2, max_length=32)

    @field_validator("heights")
    @classmethod
    def _rectangular(cls, rows: list[list[int]]) -> list[list[int]]:
        widths = {len(row) for row in rows}
        if len(widths) != 1 or not 2 <= widths.pop() <= 32:
            raise ValueError("heights must be a rectangular grid of 2 to 32 columns")
        return rows


class TerrainFeature(BaseModel):
    """A landmark shaped into the terrain, centred at (x, z) studs."""

    kind: FeatureKind
    label: str = Field(min_length=1, max_length=100)
    x: int = Field(ge=-2048, le=2048)
    z: int = Field(ge=-2048, le=2048)
    radius: int = Field(ge=2, le=512)


class TerrainContext(BaseModel):
    """Why the terrain looks the way it does, for teachers and reviewers."""

    topic: str = Field(min_length=2, max_length=200)
    learning_focus: list[ShortText] = Field(default_factory=list, max_length=10)
    notes: str = Field(default="", max_length=2000)


class TerrainSpec(BaseModel):
    """Roblox terrain for the lesson and the Luau that builds it."""

    name: str = Field(min_length=3, max_length=200)
    terrain_type: str = Field(min_length=3, max_length=50)
    material: TerrainMaterial
    size: TerrainSize
    biome: str = Field(min_length=3, max_length=50)
    features: list[TerrainFeature] = Field(default_factory=list, max_length=16)
    elevation_data: HeightMap
    generation_script: str = Field(min_length=20, max_length=50_000)
    complexity_score: int = Field(ge=1, le=10)
    educational_context: TerrainContext


class ScriptSpec(BaseModel):
    """One Roblox script; ``dependencies`` name module scripts of the same bundle."""

    name: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_]{0,99}$")
    script_type: ScriptType
    content: str = Field(min_length=1, max_length=100_000)
    description: str = Field(default="", max_length=2000)
    dependencies: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=10
    )


class ScriptBundle(BaseModel):
    """The Luau scripts that run the lesson's game mechanics."""

    scripts: list[ScriptSpec] = Field(min_length=1, max_length=10)


class ArtifactIssue(BaseModel):
    """A problem a reviewer found in one field of one artifact."""

    artifact: ArtifactName
    field: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=1000)
    severity: Literal["error", "warning"] = "error"


class RevisionRequest(BaseModel):
    """Work sent back to the agent that produced an artifact."""

    agent_type: ArtifactName
    instructions: str = Field(min_length=5, max_length=2000)
    reasons: list[Annotated[str, Field(min_length=1, max_length=1000)]] = Field(min_length=1)


class ReviewVerdict(BaseModel):
    """The reviewer's judgement: approve, or name who must revise what and why."""

    approved: bool
    score: float = Field(ge=0.0, le=1.0)
    summary: str = Field(min_length=1, max_length=2000)
    issues: list[ArtifactIssue] = Field(default_factory=list, max_length=50)
    revision_requests: list[RevisionRequest] = Field(default_factory=list, max_length=4)


class AgentInput(BaseModel):
    """Input of an artifact agent: the request plus notes of an earlier review."""

    model_config = ConfigDict(extra="forbid")

    request: EnvironmentRequest
    revision_notes: list[Annotated[str, Field(min_length=1, max_length=2000)]] = Field(
        default_factory=list, max_length=20
    )


class ContentInput(AgentInput):
    """Input of the content agent."""


class QuizInput(AgentInput):
    """Input of the quiz agent; ``objectives`` override the request's plain objectives."""

    objectives: list[ObjectiveSpec] = Field(default_factory=list, max_length=10)
    question_count: int | None = Field(default=None, ge=1, le=30)


class TerrainInput(AgentInput):
    """Input of the terrain agent; ``size`` defaults from the class size."""

    size: TerrainSize | None = None


class ScriptInput(AgentInput):
    """Input of the script agent; mechanics are named after the objectives."""

    objectives: list[ObjectiveSpec] = Field(default_factory=list, max_length=10)


class ReviewInput(BaseModel):
    """Input of the review agent: the request and every artifact produced for it."""

    model_config = ConfigDict(extra="forbid")

    request: EnvironmentRequest
    content: LessonContent | None = None
    quiz: QuizSpec | None = None
    terrain: TerrainSpec | None = None
    scripts: list[ScriptSpec] = Field(default_factory=list, max_length=10)

    @classmethod
    def from_outputs(
        cls, request: EnvironmentRequest, outputs: Mapping[str, Mapping[str, Any]]
    ) -> ReviewInput:
        """Build the review input from child task outputs keyed by agent type."""
        artifacts = {kind: output.get("artifact") for kind, output in outputs.items()}
        script_bundle = artifacts.get("script") or {}
        return cls.model_validate(
            {
                "request": request.model_dump(),
                "content": artifacts.get("content"),
                "quiz": artifacts.get("quiz"),
                "terrain": artifacts.get("terrain"),
                "scripts": script_bundle.get("scripts", []),
            }
        )


class ChildTask(BaseModel):
    """A task the supervisor asks the engine to create, with its validated input."""

    agent_type: ArtifactName
    input: dict[str, Any]


class WorkflowPlan(BaseModel):
    """The supervisor's plan: artifacts needed, child tasks, then one review of them all."""

    needs: list[ArtifactName] = Field(min_length=1)
    children: list[ChildTask] = Field(min_length=1)
    review_after: list[ArtifactName] = Field(min_length=1)


def default_question_count(request: EnvironmentRequest) -> int:
    """About one question per five minutes of lesson, between 3 and 10."""
    return min(10, max(3, request.duration_minutes // 5))


def default_terrain_size(request: EnvironmentRequest) -> TerrainSize:
    """Room for the class: small up to 10 students, large above 30."""
    if request.max_students <= 10:
        return "small"
    return "medium" if request.max_students <= 30 else "large"


INPUT_SCHEMAS: dict[ArtifactName, type[AgentInput]] = {
    "content": ContentInput,
    "quiz": QuizInput,
    "terrain": TerrainInput,
    "script": ScriptInput,
}
