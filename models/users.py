"""Users, their login sessions and their learning progress.

Columns that have a default are NOT NULL: the default exists because the
value always makes sense (flags, counters, settings, timestamps).
"""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    created_at,
    inet,
    json_dict,
    json_dict_empty,
    json_list,
    json_list_empty,
    score_5_2,
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


class User(Base):
    """A student, teacher, admin or developer.

    ``created_by``/``updated_by`` point back at ``users``; no relationship is
    mapped for them, to keep the self-reference unambiguous.
    """

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint("grade_level BETWEEN 1 AND 12", name="grade_level_range"),
        CheckConstraint("role IN ('student', 'teacher', 'admin', 'developer')", name="role"),
    )

    id: Mapped[uuid_pk]
    username: Mapped[str100] = mapped_column(unique=True)
    email: Mapped[str255] = mapped_column(unique=True)
    password_hash: Mapped[str255]

    first_name: Mapped[str100 | None]
    last_name: Mapped[str100 | None]
    display_name: Mapped[str200 | None]
    avatar_url: Mapped[str500 | None]
    bio: Mapped[text_ | None]

    role: Mapped[str20] = mapped_column(server_default=text("'student'"))
    grade_level: Mapped[int | None]
    school_name: Mapped[str200 | None]
    district_name: Mapped[str200 | None]
    subjects_taught: Mapped[json_list | None]
    subjects_interested: Mapped[json_list | None]

    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    is_verified: Mapped[bool] = mapped_column(server_default=text("false"))
    is_superuser: Mapped[bool] = mapped_column(server_default=text("false"))
    email_verified_at: Mapped[timestamptz | None]

    last_login: Mapped[timestamptz | None]
    login_count: Mapped[int] = mapped_column(server_default=text("0"))
    failed_login_count: Mapped[int] = mapped_column(server_default=text("0"))
    locked_until: Mapped[timestamptz | None]
    two_factor_enabled: Mapped[bool] = mapped_column(server_default=text("false"))
    two_factor_secret: Mapped[str255 | None]

    settings: Mapped[json_dict_empty]
    preferences: Mapped[json_dict_empty]
    notification_settings: Mapped[json_dict_empty]

    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    version: Mapped[int] = mapped_column(server_default=text("1"))
    audit_log: Mapped[json_list_empty]


class UserSession(Base):
    """A login (web, Roblox, API, mobile); it disappears with its user."""

    __tablename__ = "user_sessions"
    __table_args__ = (Index("ix_user_sessions_active_expiry", "is_active", "expires_at"),)

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    token: Mapped[str500] = mapped_column(unique=True)
    refresh_token: Mapped[str500 | None] = mapped_column(unique=True)

    session_type: Mapped[str20] = mapped_column(server_default=text("'web'"))
    ip_address: Mapped[inet | None]
    user_agent: Mapped[text_ | None]
    device_id: Mapped[str255 | None]
    browser_fingerprint: Mapped[str500 | None]

    country: Mapped[str | None] = mapped_column(String(2))
    timezone: Mapped[str50 | None]
    locale: Mapped[str | None] = mapped_column(String(10))

    created_at: Mapped[created_at]
    expires_at: Mapped[timestamptz]
    refresh_expires_at: Mapped[timestamptz | None]
    last_activity: Mapped[timestamptz_now]

    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    revoked_at: Mapped[timestamptz | None]
    revoked_reason: Mapped[str255 | None]

    security_events: Mapped[json_list_empty]


class UserProgress(Base):
    """How far one user got in one piece of content, per kind of progress.

    ``user_id`` and ``content_id`` are NOT NULL: the unique key is built on
    them, and a NULL in it would let duplicates through.
    """

    __tablename__ = "user_progress"
    __table_args__ = (
        UniqueConstraint("user_id", "content_id", "progress_type"),
        CheckConstraint(
            "completion_percentage BETWEEN 0 AND 100", name="completion_percentage_range"
        ),
    )

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    content_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("educational_content.id"), index=True)
    progress_type: Mapped[str20]

    completion_percentage: Mapped[score_5_2] = mapped_column(server_default=text("0"))
    time_spent_seconds: Mapped[int] = mapped_column(server_default=text("0"))
    attempts_count: Mapped[int] = mapped_column(server_default=text("0"))
    best_score: Mapped[score_5_2 | None]
    current_streak: Mapped[int] = mapped_column(server_default=text("0"))
    max_streak: Mapped[int] = mapped_column(server_default=text("0"))

    difficulty_level: Mapped[str20 | None]
    mastery_level: Mapped[str20 | None]
    last_interaction: Mapped[timestamptz | None]
    next_recommended_content: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )

    learning_style: Mapped[json_dict | None]
    performance_trends: Mapped[json_dict | None]
    recommendations: Mapped[json_list | None]

    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
