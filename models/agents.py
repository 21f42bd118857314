"""AI agents, their durable tasks, SPARC states and metrics.

``agent_tasks`` is the system of record of the work queue: a row exists
before its Celery message, a worker claims it atomically, a beat relay
re-sends rows never dispatched, and a reaper recovers rows whose worker
stopped sending heartbeats. The columns and indexes beyond the plan serve
exactly those queries. Columns that have a default are NOT NULL.
"""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import (
    Base,
    created_at,
    decimal_18_4,
    json_dict,
    json_list,
    score_3_2,
    str20,
    str50,
    str100,
    str200,
    str255,
    str500,
    text_,
    timestamptz,
    timestamptz_now,
    updated_at,
    uuid_pk,
)


class AIAgent(Base):
    """An agent kind and its limits.

    ``timeout_seconds`` becomes the task's soft time limit, ``retry_count``
    its retry budget, ``max_concurrent_tasks`` a cluster-wide slot count and
    ``priority`` the message priority (0-9, as the Redis transport accepts).
    """

    __tablename__ = "ai_agents"
    __table_args__ = (
        CheckConstraint("priority BETWEEN 0 AND 9", name="priority_range"),
        CheckConstraint("max_concurrent_tasks > 0", name="max_concurrent_tasks_positive"),
        CheckConstraint("timeout_seconds > 0", name="timeout_seconds_positive"),
        CheckConstraint("retry_count >= 0", name="retry_count_non_negative"),
    )

    id: Mapped[uuid_pk]
    name: Mapped[str100] = mapped_column(unique=True)
    agent_type: Mapped[str50]
    description: Mapped[text_ | None]
    version: Mapped[str20]
    model_config: Mapped[json_dict]
    capabilities: Mapped[json_list | None]
    dependencies: Mapped[json_list | None]
    priority: Mapped[int] = mapped_column(server_default=text("5"))
    max_concurrent_tasks: Mapped[int] = mapped_column(server_default=text("3"))
    timeout_seconds: Mapped[int] = mapped_column(server_default=text("300"))
    retry_count: Mapped[int] = mapped_column(server_default=text("3"))
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    health_check_url: Mapped[str500 | None]
    last_health_check: Mapped[timestamptz | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


TASK_STATUSES = ("pending", "queued", "running", "retrying", "completed", "failed", "cancelled")
"""Every ``agent_tasks.status`` (its CHECK constraint), in lifecycle order."""


class AgentTask(Base):
    """One unit of agent work, possibly a sub-task of a workflow.

    ``agent_id`` is NOT NULL: the agent supplies the task's limits.
    ``dispatched_at`` stays NULL until the message is sent (and goes back
    to NULL on a row whose retry message the broker refused: a ``queued`` row
    waiting for a slot is ``pending`` again);
    ``not_before`` holds a retry back; ``delivery_count`` counts claims, to
    stop crash loops; ``heartbeat_at`` and ``worker_hostname`` tell the reaper who runs
    the task and whether it is still alive.
    """

    __tablename__ = "agent_tasks"
    __table_args__ = (
        CheckConstraint(
            "status IN (" + ", ".join(f"'{status}'" for status in TASK_STATUSES) + ")",
            name="status",
        ),
        CheckConstraint("priority BETWEEN 0 AND 9", name="priority_range"),
        CheckConstraint("progress_percentage BETWEEN 0 AND 100", name="progress_percentage_range"),
        Index("ix_agent_tasks_claim", "status", "priority", "created_at"),
        Index(
            "ix_agent_tasks_undispatched",
            "created_at",
            postgresql_where=text("dispatched_at IS NULL AND status = 'pending'"),
        ),
        {"postgresql_with": {"fillfactor": 80}},
    )

    id: Mapped[uuid_pk]
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_agents.id"), index=True)
    parent_task_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("agent_tasks.id"), index=True
    )
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    task_type: Mapped[str50]
    task_name: Mapped[str200]
    input_data: Mapped[json_dict]
    output_data: Mapped[json_dict | None]
    status: Mapped[str20] = mapped_column(server_default=text("'pending'"))
    priority: Mapped[int] = mapped_column(server_default=text("5"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    assigned_at: Mapped[timestamptz | None]
    started_at: Mapped[timestamptz | None]
    completed_at: Mapped[timestamptz | None] = mapped_column(index=True)
    duration_seconds: Mapped[int | None]
    retry_count: Mapped[int] = mapped_column(server_default=text("0"))
    error_message: Mapped[text_ | None]
    error_details: Mapped[json_dict | None]
    progress_percentage: Mapped[int] = mapped_column(server_default=text("0"))
    intermediate_results: Mapped[json_dict | None]
    context_data: Mapped[json_dict | None]

    idempotency_key: Mapped[str255 | None] = mapped_column(unique=True)
    dispatched_at: Mapped[timestamptz | None]
    not_before: Mapped[timestamptz | None]
    delivery_count: Mapped[int] = mapped_column(server_default=text("0"))
    cancel_requested_at: Mapped[timestamptz | None]
    worker_hostname: Mapped[str255 | None]
    heartbeat_at: Mapped[timestamptz | None]

    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    agent: Mapped[AIAgent] = relationship()
    states: Mapped[list[AgentState]] = relationship(
        back_populates="task",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="AgentState.sequence_number",
    )


class AgentState(Base):
    """The output of one SPARC phase of one task, written as the phase ends.

    ``task_id`` is not in the plan: it lets a restarted task resume after
    its last written phase (one row per task and phase). ``agent_id`` is NOT
    NULL: a state is always written by an agent.
    """

    __tablename__ = "agent_states"
    __table_args__ = (
        UniqueConstraint("workflow_id", "sequence_number"),  # one number per state: 0008
        UniqueConstraint("task_id", "state_type"),
        CheckConstraint(
            "state_type IN ('situation', 'problem', 'action', 'result', 'context')",
            name="state_type",
        ),
        CheckConstraint("quality_score BETWEEN 0 AND 1", name="quality_score_range"),
        CheckConstraint("confidence_score BETWEEN 0 AND 1", name="confidence_score_range"),
    )

    id: Mapped[uuid_pk]
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("agent_tasks.id", ondelete="CASCADE"))
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_agents.id"), index=True)
    workflow_id: Mapped[uuid.UUID]
    state_type: Mapped[str50]
    state_data: Mapped[json_dict]
    sequence_number: Mapped[int]
    quality_score: Mapped[score_3_2 | None]
    confidence_score: Mapped[score_3_2 | None]
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ai_agents.id"), index=True)
    approved: Mapped[bool] = mapped_column(server_default=text("false"))
    created_at: Mapped[created_at]

    task: Mapped[AgentTask] = relationship(back_populates="states")


class AgentMetric(Base):
    """A measurement of an agent, optionally of one task.

    ``agent_id`` is NOT NULL; ``task_id`` stays optional for aggregates such
    as a success rate.
    """

    __tablename__ = "agent_metrics"
    __table_args__ = (Index("ix_agent_metrics_series", "agent_id", "metric_type", "recorded_at"),)

    id: Mapped[uuid_pk]
    agent_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("ai_agents.id"))
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agent_tasks.id"), index=True)
    metric_type: Mapped[str50]
    metric_value: Mapped[decimal_18_4]  # phase times in ms pass 10^6 after 1,000 s
    benchmark_value: Mapped[decimal_18_4 | None]
    context: Mapped[json_dict | None]
    recorded_at: Mapped[timestamptz_now]
