"""Usage and learning analytics, error logs and system health checks.

Context references (user, session, agent, task) stay optional: an event or
an error is worth keeping even when it has none. Columns that have a
default are NOT NULL.
"""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    created_at,
    decimal_10_4,
    inet,
    json_dict,
    json_dict_empty,
    json_list_empty,
    score_5_2,
    str20,
    str50,
    str64,
    str100,
    str200,
    text_,
    timestamptz,
    timestamptz_now,
    uuid_pk,
)


class UsageAnalytics(Base):
    """One usage event (a request, a generation, an error) with its context."""

    __tablename__ = "usage_analytics"

    id: Mapped[uuid_pk]

    event_type: Mapped[str50]
    event_category: Mapped[str50]
    event_name: Mapped[str100]

    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_sessions.id"), index=True)
    content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ai_agents.id"), index=True)

    endpoint: Mapped[str200 | None]
    method: Mapped[str | None] = mapped_column(String(10))
    status_code: Mapped[int | None]
    response_time_ms: Mapped[int | None]
    request_size_bytes: Mapped[int | None]
    response_size_bytes: Mapped[int | None]

    ip_address: Mapped[inet | None]
    country: Mapped[str | None] = mapped_column(String(2))
    user_agent: Mapped[text_ | None]
    device_type: Mapped[str20 | None]
    browser: Mapped[str50 | None]
    os: Mapped[str50 | None]

    properties: Mapped[json_dict_empty]
    tags: Mapped[json_list_empty]

    memory_usage_mb: Mapped[int | None]
    cpu_usage_percent: Mapped[score_5_2 | None]
    database_query_time_ms: Mapped[int | None]
    ai_processing_time_ms: Mapped[int | None]

    recorded_at: Mapped[timestamptz_now] = mapped_column(index=True)


class EducationalAnalytics(Base):
    """One learning measurement (engagement, comprehension...) with its comparisons."""

    __tablename__ = "educational_analytics"
    __table_args__ = (CheckConstraint("grade_level BETWEEN 1 AND 12", name="grade_level_range"),)

    id: Mapped[uuid_pk]

    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )
    quiz_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("quizzes.id"), index=True)
    learning_objective_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("learning_objectives.id"), index=True
    )

    metric_type: Mapped[str50]
    metric_value: Mapped[decimal_10_4]
    metric_unit: Mapped[str20 | None]

    subject: Mapped[str50 | None]
    grade_level: Mapped[int | None]
    difficulty_level: Mapped[str20 | None]
    activity_type: Mapped[str50 | None]

    session_duration_seconds: Mapped[int | None]
    time_to_completion_seconds: Mapped[int | None]
    attempts_before_success: Mapped[int | None]

    peer_average: Mapped[decimal_10_4 | None]
    historical_average: Mapped[decimal_10_4 | None]
    benchmark_value: Mapped[decimal_10_4 | None]

    context_data: Mapped[json_dict_empty]
    calculated_at: Mapped[timestamptz_now]

    recorded_at: Mapped[timestamptz_now]


class ErrorLog(Base):
    """An error, deduplicated by ``error_hash`` (unique, not in the plan).

    A repeat bumps ``occurrence_count`` and ``last_seen`` of the existing row
    (``INSERT ... ON CONFLICT (error_hash)``) instead of adding one.
    """

    __tablename__ = "error_logs"
    __table_args__ = (
        CheckConstraint("severity IN ('low', 'medium', 'high', 'critical')", name="severity"),
        CheckConstraint("status IN ('new', 'investigating', 'resolved', 'ignored')", name="status"),
    )

    id: Mapped[uuid_pk]

    error_type: Mapped[str50]
    error_code: Mapped[str50 | None]
    error_message: Mapped[text_]
    error_hash: Mapped[str64 | None] = mapped_column(unique=True)

    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_sessions.id"), index=True)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ai_agents.id"), index=True)
    task_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agent_tasks.id"), index=True)

    endpoint: Mapped[str200 | None]
    method: Mapped[str | None] = mapped_column(String(10))
    request_data: Mapped[json_dict | None]
    response_data: Mapped[json_dict | None]

    stack_trace: Mapped[text_ | None]
    environment: Mapped[str20 | None]
    service_name: Mapped[str50 | None]
    service_version: Mapped[str20 | None]

    severity: Mapped[str20] = mapped_column(server_default=text("'medium'"))
    status: Mapped[str20] = mapped_column(server_default=text("'new'"))
    assigned_to: Mapped[str100 | None]
    resolved_at: Mapped[timestamptz | None]
    resolution_notes: Mapped[text_ | None]

    first_seen: Mapped[timestamptz_now]
    last_seen: Mapped[timestamptz_now] = mapped_column(index=True)
    occurrence_count: Mapped[int] = mapped_column(server_default=text("1"))

    created_at: Mapped[created_at]


class SystemHealthCheck(Base):
    """The result of one health probe of one service instance."""

    __tablename__ = "system_health_checks"
    __table_args__ = (
        CheckConstraint("status IN ('healthy', 'degraded', 'unhealthy')", name="status"),
    )

    id: Mapped[uuid_pk]

    service_name: Mapped[str50]
    service_version: Mapped[str20 | None]
    instance_id: Mapped[str100 | None]

    status: Mapped[str20]
    overall_score: Mapped[score_5_2 | None]

    response_time_ms: Mapped[int | None]
    memory_usage_mb: Mapped[int | None]
    cpu_usage_percent: Mapped[score_5_2 | None]
    disk_usage_percent: Mapped[score_5_2 | None]

    active_connections: Mapped[int | None]
    db_response_time_ms: Mapped[int | None]
    cache_hit_rate: Mapped[score_5_2 | None]

    external_services_status: Mapped[json_dict | None]

    health_details: Mapped[json_dict_empty]
    error_messages: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    warnings: Mapped[list[str] | None] = mapped_column(ARRAY(Text))

    checked_at: Mapped[timestamptz_now] = mapped_column(index=True)
