"""The prompt convention shared by the agent kinds and every chat model.

An agent sends two messages:

* a system message naming the agent, the tool (schema) to call and the
  language learners read;
* a human message with plain-language instructions followed by one fenced
  ``json`` block, the *task block*::

      {"toolbox_task": "quiz", "version": 1,
       "request": {...EnvironmentRequest...},
       "inputs": {...what this task needs, e.g. objectives or broken scripts...},
       "feedback": ["notes from a review or from a parser"]}

Real models read the block as the facts of the assignment; the offline model
parses it (the last block in the conversation wins) and generates from it, so
both see exactly the same information.  Follow-up messages (a re-ask after a
validation error) may omit the block.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.schemas import EnvironmentRequest

TaskName = Literal[
    "content", "quiz", "terrain", "script", "script_repair", "terrain_repair", "review"
]
PROMPT_VERSION = 1
_BLOCK = re.compile(r"```json\s*\n(.*?)\n```", re.DOTALL)


class TaskBlock(BaseModel):
    """The machine-readable part of an agent's prompt."""

    model_config = ConfigDict(extra="ignore")

    toolbox_task: TaskName
    version: int = PROMPT_VERSION
    request: EnvironmentRequest
    inputs: dict[str, Any] = Field(default_factory=dict)
    feedback: list[str] = Field(default_factory=list)


def task_messages(
    task: TaskName,
    *,
    agent: str,
    schema: type[BaseModel],
    request: EnvironmentRequest,
    instructions: str,
    inputs: Mapping[str, Any] | None = None,
    feedback: Sequence[str] = (),
) -> list[BaseMessage]:
    """The two messages of one agent call, following the convention above."""
    block = TaskBlock(
        toolbox_task=task,
        request=request,
        inputs=dict(inputs or {}),
        feedback=list(feedback),
    )
    system = (
        f"You are the {agent} agent of ToolboxAI, which builds Roblox learning environments "
        f"for schools. Answer only by calling the `{schema.__name__}` tool; its arguments must "
        "validate against the tool's JSON schema. Write every learner-facing text in the "
        f"language tagged `{request.language}` and pitch it at grade {request.grade_level}."
    )
    human = (
        f"{instructions}\n\nThe task block below holds the teacher's request (`request`), "
        "what this task needs (`inputs`) and notes to take into account (`feedback`).\n"
        f"```json\n{json.dumps(block.model_dump(mode='json'), ensure_ascii=False)}\n```"
    )
    return [SystemMessage(content=system), HumanMessage(content=human)]


def read_task(messages: Sequence[BaseMessage]) -> TaskBlock | None:
    """The last task block in ``messages``, or ``None`` if there is none."""
    for message in reversed(messages):
        for raw in reversed(_BLOCK.findall(message.text)):
            try:
                data = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(data, dict) and "toolbox_task" in data:
                try:
                    return TaskBlock.model_validate(data)
                except ValidationError:
                    continue
    return None
