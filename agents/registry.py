"""Agent kinds by ``agent_type``; registered explicitly, not by import side effects."""

from __future__ import annotations

from agents.base import AgentKind
from agents.kinds.content import ContentAgent
from agents.kinds.echo import EchoAgent
from agents.kinds.quiz import QuizAgent
from agents.kinds.review import ReviewAgent
from agents.kinds.script import ScriptAgent
from agents.kinds.supervisor import SupervisorAgent
from agents.kinds.terrain import TerrainAgent
from models.errors import AgentUnavailable

_KINDS: dict[str, AgentKind] = {
    kind.agent_type: kind
    for kind in (
        SupervisorAgent(),
        ContentAgent(),
        QuizAgent(),
        TerrainAgent(),
        ScriptAgent(),
        ReviewAgent(),
        EchoAgent(),
    )
}


def get_kind(agent_type: str) -> AgentKind:
    try:
        return _KINDS[agent_type]
    except KeyError:
        raise AgentUnavailable(
            f"unknown agent kind {agent_type!r}; known: {sorted(_KINDS)}"
        ) from None


def kinds() -> dict[str, AgentKind]:
    return dict(_KINDS)
