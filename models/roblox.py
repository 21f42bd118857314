"""Roblox Studio plugins, generated scripts and terrain, and live game sessions.

Columns that have a default are NOT NULL: the default exists because the
value always makes sense.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    created_at,
    json_dict,
    json_list,
    str20,
    str50,
    str100,
    str200,
    str500,
    text_,
    timestamptz,
    timestamptz_now,
    updated_at,
    uuid_pk,
)


class RobloxPlugin(Base):
    """A Roblox Studio plugin registration.

    ``user_id`` is NOT NULL: a plugin registers for a signed-in user, and the
    unique key (studio, user) would not hold with NULLs.
    """

    __tablename__ = "roblox_plugins"
    __table_args__ = (
        UniqueConstraint("studio_id", "user_id"),
        CheckConstraint("status IN ('active', 'inactive', 'error')", name="status"),
        Index("ix_roblox_plugins_liveness", "status", "last_heartbeat"),
    )

    id: Mapped[uuid_pk]
    studio_id: Mapped[str100]
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    plugin_version: Mapped[str20]
    port: Mapped[int] = mapped_column(server_default=text("64989"))
    capabilities: Mapped[json_list | None]
    registered_at: Mapped[timestamptz_now]
    last_heartbeat: Mapped[timestamptz | None]
    status: Mapped[str20] = mapped_column(server_default=text("'active'"))
    error_message: Mapped[text_ | None]
    connection_metadata: Mapped[json_dict | None]


class RobloxScript(Base):
    """A generated Luau script (server, client or module), checked before it is stored."""

    __tablename__ = "roblox_scripts"
    __table_args__ = (
        CheckConstraint("script_type IN ('server', 'client', 'module')", name="script_type"),
    )

    id: Mapped[uuid_pk]
    content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )
    name: Mapped[str200]
    script_type: Mapped[str20]
    content: Mapped[text_]
    dependencies: Mapped[json_list | None]
    description: Mapped[text_ | None]
    roblox_version: Mapped[str20 | None]
    performance_metrics: Mapped[json_dict | None]
    tested: Mapped[bool] = mapped_column(server_default=text("false"))
    test_results: Mapped[json_dict | None]
    deployed_to_studio: Mapped[bool] = mapped_column(server_default=text("false"))
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    reviewed_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ai_agents.id"), index=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class RobloxTerrain(Base):
    """A generated terrain and the script that builds it."""

    __tablename__ = "roblox_terrain"

    id: Mapped[uuid_pk]
    content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )
    name: Mapped[str200]
    terrain_type: Mapped[str50]
    material: Mapped[str50] = mapped_column(server_default=text("'Grass'"))
    size: Mapped[str20] = mapped_column(server_default=text("'medium'"))
    biome: Mapped[str50] = mapped_column(server_default=text("'temperate'"))
    features: Mapped[json_list | None]
    elevation_data: Mapped[json_dict | None]
    generation_script: Mapped[text_ | None]
    preview_image_url: Mapped[str500 | None]
    complexity_score: Mapped[int] = mapped_column(server_default=text("1"))
    educational_context: Mapped[json_dict | None]
    performance_impact: Mapped[json_dict | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[created_at]


class RobloxGameSession(Base):
    """A class session played in a Roblox place."""

    __tablename__ = "roblox_game_sessions"
    __table_args__ = (
        CheckConstraint("status IN ('planning', 'active', 'paused', 'completed')", name="status"),
    )

    id: Mapped[uuid_pk]
    content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )
    teacher_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    roblox_place_id: Mapped[int | None] = mapped_column(BigInteger)
    roblox_universe_id: Mapped[int | None] = mapped_column(BigInteger)
    session_name: Mapped[str200]
    max_players: Mapped[int] = mapped_column(server_default=text("30"))
    current_players: Mapped[int] = mapped_column(server_default=text("0"))
    status: Mapped[str20] = mapped_column(server_default=text("'planning'"))
    started_at: Mapped[timestamptz | None]
    ended_at: Mapped[timestamptz | None]
    session_data: Mapped[json_dict | None]
    analytics_data: Mapped[json_dict | None]
    created_at: Mapped[created_at]


class RobloxPlayerSession(Base):
    """One player's stay in a game session.

    ``game_session_id`` is NOT NULL; ``user_id`` stays optional for Roblox
    players not linked to a ToolboxAI account (``roblox_user_id`` only).
    """

    __tablename__ = "roblox_player_sessions"

    id: Mapped[uuid_pk]
    game_session_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("roblox_game_sessions.id"), index=True
    )
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    roblox_user_id: Mapped[int | None] = mapped_column(BigInteger)
    joined_at: Mapped[timestamptz_now]
    left_at: Mapped[timestamptz | None]
    duration_seconds: Mapped[int | None]
    progress_data: Mapped[json_dict | None]
    achievements: Mapped[json_list | None]
    performance_metrics: Mapped[json_dict | None]
