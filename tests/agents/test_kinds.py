"""The six agent kinds through all five SPARC phases, resumed and repaired."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import BaseModel

from agents.base import PHASES, AgentKind, Phase, PhaseContext, PhaseOutcome
from agents.kinds.content import ContentAgent
from agents.kinds.quiz import QuizAgent
from agents.kinds.review import ReviewAgent
from agents.kinds.script import ScriptAgent
from agents.kinds.supervisor import SupervisorAgent
from agents.kinds.terrain import TerrainAgent
from agents.offline import OfflineChatModel
from agents.prompts import read_task
from agents.schemas import (
    INPUT_SCHEMAS,
    EnvironmentRequest,
    ReviewInput,
    ReviewVerdict,
)
from models.errors import ConfigurationError, ModelError

REQUEST = EnvironmentRequest(
    subject="Earth Science",
    grade_level=6,
    topic="Volcanoes",
    accessibility=["captions", "color_blind"],
    adaptive=True,
)
KINDS: dict[str, AgentKind] = {
    kind.agent_type: kind
    for kind in (ContentAgent(), QuizAgent(), TerrainAgent(), ScriptAgent(), SupervisorAgent())
}


def context(
    kind: AgentKind, payload: BaseModel, previous: Mapping[str, Any], model: Any
) -> PhaseContext:
    return PhaseContext(
        task_id="task",
        workflow_id="workflow",
        agent_type=kind.agent_type,
        payload=payload,
        previous=previous,
        model=model,
    )


def run(
    kind: AgentKind,
    payload: BaseModel,
    model: Any = None,
    phases: tuple[Phase, ...] = PHASES,
    previous: Mapping[str, Any] | None = None,
) -> tuple[dict[str, dict[str, Any]], dict[str, PhaseOutcome]]:
    done = dict(previous or {})
    outcomes = {}
    for phase in phases:
        outcome = kind.run_phase(phase, context(kind, payload, done, model or OfflineChatModel()))
        json.dumps(outcome.data)
        done[phase.value] = outcome.data
        outcomes[phase.value] = outcome
    return done, outcomes


PAYLOADS: dict[str, BaseModel] = {
    "supervisor": REQUEST,
    **{agent_type: schema(request=REQUEST) for agent_type, schema in INPUT_SCHEMAS.items()},
}


@pytest.mark.parametrize("agent_type", ["content", "quiz", "terrain", "script"])
def test_artifact_kind_runs_all_phases(agent_type: str) -> None:
    kind = KINDS[agent_type]
    assert kind.uses_model
    done, outcomes = run(kind, PAYLOADS[agent_type])
    assert outcomes["situation"].usage.model_calls == outcomes["problem"].usage.model_calls == 0
    action = outcomes["action"]
    assert action.usage.model_calls == 1 and action.usage.output_tokens > 0
    assert action.data["model"] == "offline:toolbox-deterministic-v1"
    result = done["result"]
    assert result["artifact_kind"] == agent_type and result["checks"]["passed"]
    assert result["checks"]["tested"] == (agent_type in ("terrain", "script"))
    assert result.get("repair", {"attempted": False})["attempted"] is False
    reflection = outcomes["context"]
    for score in (reflection.quality_score, reflection.confidence_score):
        assert score is not None and 0.0 <= score <= 1.0
    assert reflection.data["reviewer_focus"] and reflection.data["lessons_learned"]
    output = kind.output(context(kind, PAYLOADS[agent_type], done, None))
    assert output["artifact"] == result["artifact"]


@pytest.mark.parametrize("agent_type", ["content", "quiz", "terrain", "script", "supervisor"])
@pytest.mark.parametrize("stop", [1, 2, 3, 4])
def test_resumes_from_json_state(agent_type: str, stop: int) -> None:
    kind = KINDS[agent_type]
    payload = PAYLOADS[agent_type]
    whole, _ = run(kind, payload)
    first, _ = run(kind, payload, phases=PHASES[:stop])
    rebuilt = json.loads(json.dumps(first))
    fresh = type(kind)()
    resumed, _ = run(
        fresh, payload.model_validate(payload.model_dump()), phases=PHASES[stop:], previous=rebuilt
    )
    assert resumed == whole


def test_artifact_kinds_need_a_model() -> None:
    kind = KINDS["quiz"]
    with pytest.raises(ConfigurationError, match="needs a chat model"):
        kind.run_phase(Phase.ACTION, context(kind, PAYLOADS["quiz"], {}, None))


def test_supervisor_plans_children_and_review() -> None:
    kind = KINDS["supervisor"]
    assert not kind.uses_model
    done, outcomes = run(kind, REQUEST)
    assert all(o.usage.model_calls == 0 for o in outcomes.values())
    plan = kind.output(context(kind, REQUEST, done, None))
    assert plan["needs"] == plan["review_after"] == ["content", "quiz", "terrain", "script"]
    for child in plan["children"]:
        INPUT_SCHEMAS[child["agent_type"]].model_validate(child["input"])
    quiz = next(c for c in plan["children"] if c["agent_type"] == "quiz")
    assert quiz["input"]["question_count"] == 6
    only_quiz = REQUEST.model_copy(update={"artifacts": ["quiz"]})
    done, _ = run(kind, only_quiz)
    assert [c["agent_type"] for c in done["result"]["artifact"]["children"]] == ["quiz"]


def workflow_outputs() -> dict[str, dict[str, Any]]:
    outputs = {}
    for agent_type in ("content", "quiz", "terrain", "script"):
        kind = KINDS[agent_type]
        done, _ = run(kind, PAYLOADS[agent_type])
        outputs[agent_type] = kind.output(context(kind, PAYLOADS[agent_type], done, None))
    return outputs


def test_review_approves_a_clean_workflow() -> None:
    review = ReviewInput.from_outputs(REQUEST, workflow_outputs())
    kind = ReviewAgent()
    done, outcomes = run(kind, review)
    verdict = kind.output(context(kind, review, done, None))
    assert verdict["approved"] and verdict["revision_tasks"] == []
    assert outcomes["context"].quality_score == verdict["score"]


def test_review_sends_rule_violations_back() -> None:
    outputs = workflow_outputs()
    questions = outputs["quiz"]["artifact"]["questions"]
    questions[0]["explanation"] = ""
    outputs["script"]["artifact"]["scripts"][0]["content"] = "local x = ("
    review = ReviewInput.from_outputs(REQUEST, outputs)
    kind = ReviewAgent()
    done, _ = run(kind, review)
    verdict = kind.output(context(kind, review, done, None))
    assert not verdict["approved"]
    assert {r["agent_type"] for r in verdict["revision_requests"]} == {"quiz", "script"}
    assert any(i["field"] == "questions[0].explanation" for i in verdict["issues"])
    task = next(t for t in verdict["revision_tasks"] if t["agent_type"] == "quiz")
    assert any("explanation" in note for note in task["input"]["revision_notes"])


class ApprovingModel(OfflineChatModel):
    """A careless reviewer that approves everything."""

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        verdict = ReviewVerdict(approved=True, score=0.97, summary="Looks great.")
        call = {"name": "ReviewVerdict", "args": verdict.model_dump(), "id": "call_1"}
        return ChatResult(
            generations=[ChatGeneration(message=AIMessage(content="", tool_calls=[call]))]
        )


def test_rules_override_an_approving_model() -> None:
    outputs = workflow_outputs()
    outputs["quiz"]["artifact"]["total_points"] = 999
    review = ReviewInput.from_outputs(REQUEST, outputs)
    kind = ReviewAgent()
    done, outcomes = run(kind, review, model=ApprovingModel())
    assert done["action"]["artifact"]["approved"]
    verdict = done["result"]["artifact"]
    assert not verdict["approved"] and verdict["score"] < 0.97
    assert verdict["revision_requests"][0]["agent_type"] == "quiz"
    assert outcomes["result"].confidence_score == 0.6


class BrokenLuauModel(OfflineChatModel):
    """Writes one script (or terrain builder) that does not parse; repairs when asked."""

    repair: bool = True

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> ChatResult:
        answer = super()._generate(messages, *args, **kwargs)
        task = read_task(messages)
        assert task is not None
        if task.toolbox_task.endswith("_repair") and self.repair:
            return answer
        message = answer.generations[0].message
        assert isinstance(message, AIMessage)
        arguments = message.tool_calls[0]["args"]
        if "scripts" in arguments:
            arguments["scripts"][1]["content"] = "local function broken(\n\treturn 1\nend"
        else:
            arguments["generation_script"] += "\nlocal = ="
        call = {**message.tool_calls[0], "args": arguments}
        broken = AIMessage(content="", tool_calls=[call], usage_metadata=message.usage_metadata)
        return ChatResult(generations=[ChatGeneration(message=broken)])


@pytest.mark.parametrize("agent_type", ["script", "terrain"])
def test_luau_that_does_not_parse_is_repaired(agent_type: str) -> None:
    kind = KINDS[agent_type]
    done, outcomes = run(kind, PAYLOADS[agent_type], model=BrokenLuauModel())
    result = done["result"]
    assert result["repair"]["attempted"] and result["repair"]["errors_before"]
    assert result["checks"]["passed"] and result["checks"]["tested"]
    assert all(check["ok"] for check in result["checks"]["test_results"].values())
    assert outcomes["result"].usage.model_calls == 1
    confidence = outcomes["context"].confidence_score
    assert confidence is not None and confidence < 0.95
    assert any("parse" in lesson for lesson in done["context"]["lessons_learned"])


def test_luau_still_broken_after_repair_is_retryable() -> None:
    kind = KINDS["script"]
    with pytest.raises(ModelError, match="still does not parse"):
        run(kind, PAYLOADS["script"], model=BrokenLuauModel(repair=False))


def test_each_kind_runs_well_under_100_ms() -> None:
    model = OfflineChatModel()
    for agent_type, payload in PAYLOADS.items():
        run(KINDS[agent_type], payload, model=model)
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            run(KINDS[agent_type], payload, model=model)
            timings.append(time.perf_counter() - started)
        assert sorted(timings)[2] < 0.1, (agent_type, timings)
