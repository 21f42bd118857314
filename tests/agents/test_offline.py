"""The offline model: deterministic, follows the request, always valid, honest about itself."""

from __future__ import annotations

import json
import string
from random import Random
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from pydantic import BaseModel

from agents.checks import check_content, check_quiz, check_scripts, check_terrain
from agents.model_spec import OFFLINE_MODEL_NAME
from agents.offline import OfflineChatModel
from agents.prompts import TaskName, task_messages
from agents.providers import invoke_structured
from agents.schemas import (
    BLOOM_ORDER,
    EnvironmentRequest,
    LessonContent,
    QuizSpec,
    ScriptBundle,
    TerrainSpec,
)
from models.errors import NotSupported

MODEL = OfflineChatModel()
SCHEMAS: dict[TaskName, type[BaseModel]] = {
    "content": LessonContent,
    "quiz": QuizSpec,
    "terrain": TerrainSpec,
    "script": ScriptBundle,
}
VOLCANOES = EnvironmentRequest(subject="Science", grade_level=3, topic="Volcanoes")
ROME = EnvironmentRequest(
    subject="History",
    grade_level=11,
    topic="The Roman Empire",
    learning_objectives=["Compare Roman and Greek city planning", "Evaluate why Rome declined"],
    language="es",
    accessibility=["captions"],
)


def generate(task: TaskName, request: EnvironmentRequest, **inputs: Any) -> Any:
    schema = SCHEMAS[task]
    messages = task_messages(
        task, agent=task, schema=schema, request=request, instructions="Do it.", inputs=inputs
    )
    artifact, usage = invoke_structured(MODEL, schema, messages)
    assert usage.model_calls == 1 and usage.input_tokens > 0 and usage.output_tokens > 0
    return artifact


def test_names_itself() -> None:
    assert MODEL._llm_type == "toolbox-offline"
    assert MODEL.model_name == OFFLINE_MODEL_NAME == "offline:toolbox-deterministic-v1"


@pytest.mark.parametrize("task", list(SCHEMAS))
def test_same_prompt_same_answer(task: TaskName) -> None:
    first = generate(task, ROME).model_dump()
    assert generate(task, ROME).model_dump() == first
    assert generate(task, VOLCANOES).model_dump() != first


def test_content_follows_the_request() -> None:
    volcano, rome = generate("content", VOLCANOES), generate("content", ROME)
    assert "Volcanoes" in volcano.title and "Roman Empire" in rome.title
    assert rome.title.startswith("Explorando") and rome.language == "es"
    assert [o.title for o in rome.objectives] == ROME.learning_objectives
    assert [o.bloom_level for o in rome.objectives] == ["analyze", "evaluate"]
    assert 2 <= len(volcano.objectives) <= 4
    hardest = max(BLOOM_ORDER.index(o.bloom_level) for o in volcano.objectives)
    assert hardest <= BLOOM_ORDER.index("apply")
    assert (volcano.difficulty_level, rome.difficulty_level) == ("easy", "hard")
    assert volcano.environment_type != rome.environment_type
    assert len(rome.accessibility_features) == 1 and not volcano.accessibility_features


def test_quiz_follows_the_request() -> None:
    volcano = generate("quiz", VOLCANOES, question_count=6)
    rome = generate("quiz", ROME, question_count=6)
    assert len(volcano.questions) == len(rome.questions) == 6
    assert {q.difficulty for q in volcano.questions} <= {"easy", "medium"}
    assert "hard" in {q.difficulty for q in rome.questions}
    assert "easy" not in {q.difficulty for q in rome.questions}
    assert {q.objective for q in rome.questions} == set(ROME.learning_objectives)
    assert "short_answer" in {q.question_type for q in rome.questions}
    assert "short_answer" not in {q.question_type for q in volcano.questions}
    assert rome.difficulty_progression is None
    adaptive = generate("quiz", VOLCANOES.model_copy(update={"adaptive": True}))
    assert adaptive.is_adaptive and adaptive.difficulty_progression is not None


def test_world_follows_the_topic() -> None:
    volcano, rome = generate("terrain", VOLCANOES), generate("terrain", ROME)
    assert (volcano.biome, volcano.material) == ("volcanic", "Basalt")
    assert (rome.biome, rome.material) == ("urban", "Cobblestone")
    ocean = generate("terrain", VOLCANOES.model_copy(update={"topic": "Coral reefs"}))
    assert ocean.material == "Sand"
    assert generate("terrain", VOLCANOES, size="large").size == "large"


def test_scripts_are_named_after_objectives() -> None:
    bundle = generate("script", ROME)
    config = next(s for s in bundle.scripts if s.name == "LessonConfig").content
    assert '"compare_roman_and_greek_city_planning"' in config
    assert 'mechanic = "DebateVote"' in config
    assert "captions = true" in config
    tracker = next(s for s in bundle.scripts if s.name == "ObjectiveTracker")
    assert "SortEvidence_compare_roman_and_greek_city_planning" in tracker.description


def test_unsupported_language_is_marked_english() -> None:
    content = generate("content", VOLCANOES.model_copy(update={"language": "ja"}))
    assert content.language == "en"


def test_usage_and_metadata_on_the_message() -> None:
    messages = task_messages(
        "content", agent="content", schema=LessonContent, request=VOLCANOES, instructions="Go."
    )
    message = MODEL.bind_tools([LessonContent]).invoke(messages)
    assert isinstance(message, AIMessage)
    assert message.tool_calls[0]["name"] == "LessonContent"
    usage = message.usage_metadata
    assert (
        usage is not None
        and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    )
    assert message.response_metadata["model_name"] == OFFLINE_MODEL_NAME


def test_plain_invoke_answers_json() -> None:
    messages = task_messages(
        "quiz", agent="quiz", schema=QuizSpec, request=VOLCANOES, instructions="Go."
    )
    answer = MODEL.invoke(messages)
    QuizSpec.model_validate(json.loads(answer.text))


def test_free_chat_is_not_supported() -> None:
    with pytest.raises(NotSupported, match="toolbox_task"):
        MODEL.invoke([HumanMessage(content="hello")])


def test_unknown_schema_is_not_supported() -> None:
    class Poem(BaseModel):
        text: str

    messages = task_messages(
        "content", agent="content", schema=Poem, request=VOLCANOES, instructions="Go."
    )
    with pytest.raises(NotSupported, match="Poem"):
        invoke_structured(MODEL, Poem, messages)


def _random_text(rng: Random, low: int, high: int) -> str:
    alphabet = string.ascii_letters + string.digits + " ééñ漢字\"'\\`{}[]()<>--\t"
    text = "".join(rng.choice(alphabet) for _ in range(rng.randint(low, high))).strip()
    return text if len(text) >= low else "Topic " + text


def _random_request(rng: Random) -> EnvironmentRequest:
    topics = ["Volcanoes", "Fractions", "Photosynthesis", "Ancient Rome", "The Moon", "Glaciers"]
    return EnvironmentRequest(
        subject=rng.choice(["Science", "Math", "History", "Art", _random_text(rng, 2, 40)]),
        grade_level=rng.randint(1, 12),
        topic=rng.choice([*topics, _random_text(rng, 2, 120)]),
        learning_objectives=[_random_text(rng, 3, 200) for _ in range(rng.randint(0, 5))],
        duration_minutes=rng.randint(5, 240),
        max_students=rng.randint(1, 100),
        accessibility=rng.sample(["screen_reader", "captions", "color_blind", "reduced_motion"], 2),
        language=rng.choice(["en", "es", "fr", "ja", "pt-BR", "en-GB"]),
        adaptive=rng.random() < 0.5,
    )


def test_always_valid_across_random_requests() -> None:
    rng = Random(20261126)
    for _ in range(40):
        request = _random_request(rng)
        content = generate("content", request)
        quiz = generate("quiz", request, question_count=rng.randint(1, 30))
        terrain = generate("terrain", request)
        bundle = generate("script", request)
        assert check_content(content) == [], request
        assert check_quiz(quiz) == [], request
        assert check_terrain(terrain) == [], request
        assert check_scripts(bundle.scripts) == [], request
