"""WebSocket connections and live collaboration sessions.

A participant or a change means nothing without its session, so their
``session_id`` is NOT NULL. Columns that have a default are NOT NULL.
"""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    created_at,
    json_dict,
    json_dict_empty,
    json_list,
    json_list_empty,
    str20,
    str50,
    str100,
    str200,
    timestamptz,
    timestamptz_now,
    updated_at,
    uuid_pk,
)


class WebSocketConnection(Base):
    """An open (or closed) socket of a dashboard, Roblox client or plugin."""

    __tablename__ = "websocket_connections"
    __table_args__ = (Index("ix_websocket_connections_liveness", "is_active", "last_ping"),)

    id: Mapped[uuid_pk]
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_sessions.id"), index=True)
    connection_id: Mapped[str100] = mapped_column(unique=True)
    socket_id: Mapped[str100] = mapped_column(unique=True)

    connection_type: Mapped[str20]
    client_info: Mapped[json_dict | None]

    subscribed_channels: Mapped[json_list | None]
    permissions: Mapped[json_dict | None]

    connected_at: Mapped[timestamptz_now]
    last_ping: Mapped[timestamptz_now]
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    disconnected_at: Mapped[timestamptz | None]
    disconnect_reason: Mapped[str100 | None]

    message_count: Mapped[int] = mapped_column(server_default=text("0"))
    last_message_at: Mapped[timestamptz | None]
    rate_limit_hits: Mapped[int] = mapped_column(server_default=text("0"))


class CollaborationSession(Base):
    """A shared editing session, live class or review."""

    __tablename__ = "collaboration_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('planning', 'active', 'paused', 'ended')", name="status"),
    )

    id: Mapped[uuid_pk]
    content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )
    session_name: Mapped[str200]
    session_type: Mapped[str20]

    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    max_participants: Mapped[int] = mapped_column(server_default=text("30"))
    current_participants: Mapped[int] = mapped_column(server_default=text("0"))
    require_approval: Mapped[bool] = mapped_column(server_default=text("false"))

    status: Mapped[str20] = mapped_column(server_default=text("'planning'"))
    started_at: Mapped[timestamptz | None]
    ended_at: Mapped[timestamptz | None]
    last_activity: Mapped[timestamptz_now]

    shared_state: Mapped[json_dict_empty]
    change_log: Mapped[json_list_empty]

    settings: Mapped[json_dict_empty]
    permissions: Mapped[json_dict_empty]

    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class CollaborationParticipant(Base):
    """A user's place in a session.

    The plan declares both a surrogate ``id`` and ``PRIMARY KEY (session_id,
    user_id)``; the surrogate stays the key and the pair becomes unique.
    """

    __tablename__ = "collaboration_participants"
    __table_args__ = (UniqueConstraint("session_id", "user_id"),)

    id: Mapped[uuid_pk]
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("collaboration_sessions.id"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str20] = mapped_column(server_default=text("'participant'"))

    joined_at: Mapped[timestamptz_now]
    left_at: Mapped[timestamptz | None]
    duration_seconds: Mapped[int | None]
    contribution_count: Mapped[int] = mapped_column(server_default=text("0"))
    last_contribution: Mapped[timestamptz | None]

    permissions: Mapped[json_dict_empty]
    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    muted: Mapped[bool] = mapped_column(server_default=text("false"))


class CollaborationChange(Base):
    """One change in a session's ordered log.

    ``change_sequence`` is unique per session (not in the plan), so two
    writers cannot both claim the same place in the log. ``user_id`` stays
    optional for changes made by the system or an agent.
    """

    __tablename__ = "collaboration_changes"
    __table_args__ = (UniqueConstraint("session_id", "change_sequence"),)

    id: Mapped[uuid_pk]
    session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("collaboration_sessions.id"), index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    change_type: Mapped[str50]

    target_object: Mapped[str100 | None]
    change_data: Mapped[json_dict]
    previous_state: Mapped[json_dict | None]
    new_state: Mapped[json_dict | None]

    change_sequence: Mapped[int]
    applied: Mapped[bool] = mapped_column(server_default=text("true"))
    conflict_resolution: Mapped[json_dict | None]

    created_at: Mapped[created_at]
