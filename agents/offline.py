"""``OfflineChatModel``: the deterministic, network-free default chat model.

It is a real langchain ``BaseChatModel``: agents call it exactly as they call a
hosted model (``with_structured_output`` through ``bind_tools``), so the whole
workflow runs on a laptop or in CI, and stored metadata names it plainly
(``offline:toolbox-deterministic-v1``).  It reads the task block of the prompt
convention (``agents.prompts``) and answers with a tool call whose arguments
validate against the requested schema; the same prompt always gives the same
answer because the generator is seeded from a hash of the task block.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from random import Random
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel

from agents.checks import split_issue
from agents.model_spec import OFFLINE_MODEL_NAME
from agents.offline_lesson import lesson_content, objectives_for, quiz_spec
from agents.offline_scripts import script_bundle
from agents.offline_world import terrain_spec
from agents.prompts import TaskBlock, read_task
from agents.schemas import (
    ArtifactIssue,
    ArtifactName,
    ObjectiveSpec,
    ReviewInput,
    ReviewVerdict,
    RevisionRequest,
)
from models.errors import NotSupported

CHARS_PER_TOKEN = 4


def _scripts(task: TaskBlock, _rng: Random) -> BaseModel:
    given = [ObjectiveSpec.model_validate(o) for o in task.inputs.get("objectives") or []]
    objectives = given or objectives_for(task.request)
    return script_bundle(task.request, [(o.title, o.bloom_level) for o in objectives])


def _review(task: TaskBlock, _rng: Random) -> BaseModel:
    """Rule issues become errors; language, accessibility and coverage gaps warnings."""
    review = ReviewInput.model_validate(
        {"request": task.request, **{k: v for k, v in task.inputs.items() if k != "rule_issues"}}
    )
    issues = [
        ArtifactIssue(artifact=artifact, field=field, reason=reason)
        for artifact, field, reason in map(split_issue, _rule_issues(task))
    ]
    request = review.request
    primary = request.language.split("-")[0]
    for name, artifact in (("content", review.content), ("quiz", review.quiz)):
        if artifact is not None and artifact.language.split("-")[0] != primary:
            issues.append(
                ArtifactIssue(
                    artifact=name,
                    field="language",
                    severity="warning",
                    reason=f"written in {artifact.language}, the class reads {request.language}",
                )
            )
    if review.content is not None:
        if len(review.content.accessibility_features) < len(request.accessibility):
            issues.append(
                ArtifactIssue(
                    artifact="content",
                    field="accessibility_features",
                    severity="warning",
                    reason=f"needs {', '.join(request.accessibility)}; not all are covered",
                )
            )
        if review.quiz is not None:
            assessed = {q.objective for q in review.quiz.questions}
            issues.extend(
                ArtifactIssue(
                    artifact="quiz",
                    field="questions",
                    severity="warning",
                    reason=f"objective not assessed: {o.title}",
                )
                for o in review.content.objectives
                if o.title not in assessed
            )
    errors = [i for i in issues if i.severity == "error"]
    warnings = len(issues) - len(errors)
    by_agent: dict[ArtifactName, list[ArtifactIssue]] = {}
    for issue in errors:
        by_agent.setdefault(issue.artifact, []).append(issue)
    requests = [
        RevisionRequest(
            agent_type=agent,
            instructions=f"Revise the {agent}: fix "
            + ", ".join(sorted({i.field for i in found}))[:1900],
            reasons=[f"{i.field}: {i.reason}" for i in found][:10],
        )
        for agent, found in by_agent.items()
    ]
    summary = (
        f"Approved with {warnings} warning(s)."
        if not errors
        else f"Needs revision: {len(errors)} error(s) in {', '.join(by_agent)}; "
        f"{warnings} warning(s)."
    )
    return ReviewVerdict(
        approved=not errors,
        score=round(max(0.0, 1.0 - 0.2 * len(errors) - 0.05 * warnings), 3),
        summary=summary,
        issues=issues[:50],
        revision_requests=requests,
    )


def _rule_issues(task: TaskBlock) -> list[str]:
    found = task.inputs.get("rule_issues") or {}
    return [str(issue) for issues in found.values() for issue in issues]


_GENERATORS: dict[str, Callable[[TaskBlock, Random], BaseModel]] = {
    "LessonContent": lambda task, rng: lesson_content(task.request, rng),
    "QuizSpec": lambda task, rng: quiz_spec(task.request, task.inputs, rng),
    "TerrainSpec": lambda task, rng: terrain_spec(task.request, task.inputs, rng),
    "ScriptBundle": _scripts,
    "ReviewVerdict": _review,
}
_SCHEMA_OF_TASK = {
    "content": "LessonContent",
    "quiz": "QuizSpec",
    "terrain": "TerrainSpec",
    "terrain_repair": "TerrainSpec",
    "script": "ScriptBundle",
    "script_repair": "ScriptBundle",
    "review": "ReviewVerdict",
}


def estimate_tokens(text: str) -> int:
    """About four characters per token, the usual rule of thumb for English."""
    return max(1, -(-len(text) // CHARS_PER_TOKEN))


class OfflineChatModel(BaseChatModel):
    """A deterministic chat model that writes ToolboxAI artifacts without a network."""

    model_name: str = OFFLINE_MODEL_NAME
    drill: Literal["", "unparseable-scripts"] = ""
    """Fault drill: ``unparseable-scripts`` writes Luau that does not parse on the first
    script request (repairs come out right), to exercise the parser gate end to end."""

    @property
    def _llm_type(self) -> str:
        return "toolbox-offline"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        del stop, run_manager  # tool-call answers have no stop sequences; nothing streams
        task = read_task(messages)
        if task is None:
            raise NotSupported(
                "the offline model only answers ToolboxAI task prompts: a fenced json block "
                'with a "toolbox_task" key (see agents.prompts)'
            )
        tool_names = [t["function"]["name"] for t in kwargs.get("tools") or []]
        schema_name = self._schema_name(task, tool_names, kwargs.get("tool_choice"))
        digest = hashlib.sha256(
            json.dumps([schema_name, task.model_dump(mode="json")], sort_keys=True).encode()
        ).digest()
        artifact = _GENERATORS[schema_name](task, Random(int.from_bytes(digest[:8], "big")))
        args = artifact.model_dump(mode="json")
        if self.drill == "unparseable-scripts" and task.toolbox_task == "script":
            args["scripts"][0]["content"] += "\nlocal function broken(\n"
        output_text = json.dumps(args, ensure_ascii=False)
        usage = UsageMetadata(
            input_tokens=sum(estimate_tokens(m.text) for m in messages),
            output_tokens=estimate_tokens(output_text),
            total_tokens=0,
        )
        usage["total_tokens"] = usage["input_tokens"] + usage["output_tokens"]
        metadata = {"model_name": self.model_name, "model_provider": "offline"}
        if tool_names:
            call = {"name": schema_name, "args": args, "id": f"call_{uuid.UUID(bytes=digest[:16])}"}
            message = AIMessage(
                content="",
                tool_calls=[call],
                usage_metadata=usage,
                response_metadata={**metadata, "finish_reason": "tool_calls"},
            )
        else:
            message = AIMessage(
                content=output_text,
                usage_metadata=usage,
                response_metadata={**metadata, "finish_reason": "stop"},
            )
        return ChatResult(generations=[ChatGeneration(message=message)])

    @staticmethod
    def _schema_name(task: TaskBlock, tool_names: list[str], tool_choice: Any) -> str:
        """The forced tool, else the task's own schema, else the first tool it can fill."""
        if isinstance(tool_choice, dict):
            tool_choice = tool_choice.get("function", {}).get("name") or tool_choice.get("name")
        wanted = _SCHEMA_OF_TASK[task.toolbox_task]
        if isinstance(tool_choice, str) and tool_choice in tool_names:
            candidates = [tool_choice]
        elif tool_names:
            candidates = sorted(tool_names, key=lambda name: name != wanted)
        else:
            candidates = [wanted]
        for name in candidates:
            if name in _GENERATORS:
                return name
        raise NotSupported(
            f"the offline model cannot fill {', '.join(candidates)}; it fills "
            f"{', '.join(_GENERATORS)}"
        )
