"""Default ``ai_agents`` rows, one per agent kind, inserted idempotently.

Existing rows are left alone: operators tune limits in the table, and a
re-seed must never undo that.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection
from sqlalchemy.dialects.postgresql import insert

from models import AIAgent

DEFAULT_AGENTS: tuple[dict[str, Any], ...] = (
    {
        "agent_type": "supervisor",
        "timeout_seconds": 120,
        "retry_count": 2,
        "priority": 7,
        "max_concurrent_tasks": 8,
        "description": "Plans a workflow into child tasks and closes it.",
    },
    {
        "agent_type": "content",
        "timeout_seconds": 300,
        "retry_count": 3,
        "priority": 5,
        "max_concurrent_tasks": 4,
        "description": "Lesson content and learning objectives.",
    },
    {
        "agent_type": "quiz",
        "timeout_seconds": 300,
        "retry_count": 3,
        "priority": 5,
        "max_concurrent_tasks": 4,
        "description": "Quizzes with questions, options and hints.",
    },
    {
        "agent_type": "terrain",
        "timeout_seconds": 300,
        "retry_count": 3,
        "priority": 4,
        "max_concurrent_tasks": 4,
        "description": "Roblox terrain fitting the lesson.",
    },
    {
        "agent_type": "script",
        "timeout_seconds": 300,
        "retry_count": 3,
        "priority": 4,
        "max_concurrent_tasks": 4,
        "description": "Roblox Luau scripts for the game mechanics.",
    },
    {
        "agent_type": "review",
        "timeout_seconds": 180,
        "retry_count": 2,
        "priority": 6,
        "max_concurrent_tasks": 4,
        "description": "Checks, scores and approves the artifacts.",
    },
    {
        "agent_type": "echo",
        "timeout_seconds": 60,
        "retry_count": 3,
        "priority": 5,
        "max_concurrent_tasks": 16,
        "description": "Runs the SPARC phases without a model: diagnostics and benchmarks.",
    },
)


def seed_agents(connection: Connection) -> int:
    """Insert missing default agents; return how many were inserted."""
    rows = [
        {
            **spec,
            "name": f"{spec['agent_type']}-agent",
            "version": "1.0.0",
            "model_config": {"provider": "settings", "structured_output": True},
            "capabilities": [spec["agent_type"]],
            "dependencies": [],
        }
        for spec in DEFAULT_AGENTS
    ]
    statement = insert(AIAgent).values(rows).on_conflict_do_nothing(index_elements=["name"])
    return connection.execute(statement).rowcount
