"""Learning objectives and the educational content (Roblox environments) built for them.

Columns that have a default are NOT NULL: the default exists because the
value always makes sense.
"""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import (
    Base,
    created_at,
    json_dict,
    json_list,
    str20,
    str50,
    str100,
    str200,
    text_,
    updated_at,
    uuid_pk,
)


class LearningObjective(Base):
    """A measurable goal, optionally aligned with a curriculum standard."""

    __tablename__ = "learning_objectives"
    __table_args__ = (CheckConstraint("grade_level BETWEEN 1 AND 12", name="grade_level_range"),)

    id: Mapped[uuid_pk]
    title: Mapped[str200]
    description: Mapped[text_ | None]
    subject: Mapped[str50]
    grade_level: Mapped[int | None]
    bloom_level: Mapped[str20 | None]
    curriculum_standard: Mapped[str100 | None]
    measurable: Mapped[bool] = mapped_column(server_default=text("true"))
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class EducationalContent(Base):
    """A generated (or template) learning environment.

    ``status`` and ``workflow_id`` are not in the plan: content is written by
    an agent workflow and stays a ``draft`` until that workflow finishes, so a
    half-built environment is never served.
    """

    __tablename__ = "educational_content"
    __table_args__ = (
        CheckConstraint("grade_level BETWEEN 1 AND 12", name="grade_level_range"),
        CheckConstraint("status IN ('draft', 'ready', 'failed', 'archived')", name="status"),
    )

    id: Mapped[uuid_pk]
    title: Mapped[str200]
    description: Mapped[text_ | None]
    subject: Mapped[str50]
    grade_level: Mapped[int]
    environment_type: Mapped[str50]
    terrain_size: Mapped[str20] = mapped_column(server_default=text("'medium'"))
    difficulty_level: Mapped[str20] = mapped_column(server_default=text("'medium'"))
    duration_minutes: Mapped[int] = mapped_column(server_default=text("30"))
    max_students: Mapped[int] = mapped_column(server_default=text("30"))
    content_data: Mapped[json_dict]
    generated_scripts: Mapped[json_list | None]
    terrain_config: Mapped[json_dict | None]
    game_mechanics: Mapped[json_dict | None]
    accessibility_features: Mapped[bool] = mapped_column(server_default=text("false"))
    multilingual: Mapped[bool] = mapped_column(server_default=text("false"))
    version: Mapped[int] = mapped_column(server_default=text("1"))
    is_template: Mapped[bool] = mapped_column(server_default=text("false"))
    status: Mapped[str20] = mapped_column(server_default=text("'draft'"))
    workflow_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    objectives: Mapped[list[LearningObjective]] = relationship(
        secondary="content_objectives", passive_deletes=True
    )


class ContentObjective(Base):
    """Which objectives a piece of content teaches; goes with either side."""

    __tablename__ = "content_objectives"

    content_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("educational_content.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    objective_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("learning_objectives.id", ondelete="CASCADE"), primary_key=True, index=True
    )
