"""Learning management system integrations: courses, assignments, rosters, grade passback.

Sync writes a row only when the platform's data changed (``sync_hash``) and
marks rows that disappeared upstream with ``deleted_at`` instead of deleting
them, so grades already linked to them survive. Secrets are stored
encrypted. Columns that have a default are NOT NULL.
"""

from __future__ import annotations

import datetime as dt
import uuid

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import ARRAY, UUID
from sqlalchemy.orm import Mapped, mapped_column

from models.base import (
    Base,
    created_at,
    decimal_8_2,
    json_dict,
    json_dict_empty,
    score_5_2,
    str20,
    str50,
    str64,
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


class LMSIntegration(Base):
    """One connection to a school's LMS (Canvas, Schoology, LTI Advantage, OneRoster...).

    ``options`` holds platform-specific settings (an LTI deployment id, a
    OneRoster school id); ``private_key_encrypted`` signs LTI client
    assertions.  ``not_before`` is the time an LMS's ``Retry-After`` named
    when a sync or a grade passback stopped on it instead of waiting
    in-process: beat's syncs and the grade drain leave the integration alone
    until then, and a successful sync clears it.  ``sync_run_id`` names the
    newest claim of a sync (``lms.schedule``): only the message carrying it
    runs, so a superseded chain of Celery retries ends when it wakes.
    """

    __tablename__ = "lms_integrations"
    __table_args__ = (
        CheckConstraint(
            "platform_name IN ('canvas', 'schoology', 'moodle', 'blackboard', 'lti', 'oneroster')",
            name="platform_name",
        ),
        CheckConstraint(
            "auth_type IN ('oauth2', 'oauth1', 'api_key', 'token', 'basic', 'lti_jwt')",
            name="auth_type",
        ),
        CheckConstraint("sync_frequency_hours > 0", name="sync_frequency_hours_positive"),
        CheckConstraint(
            "last_sync_status IN ('running', 'success', 'partial', 'failed')",
            name="last_sync_status",
        ),
    )

    id: Mapped[uuid_pk]
    platform_name: Mapped[str50]
    institution_name: Mapped[str200]
    base_url: Mapped[str500]
    api_version: Mapped[str20 | None]

    auth_type: Mapped[str20]
    client_id: Mapped[str255 | None]
    client_secret_encrypted: Mapped[text_ | None]
    api_key_encrypted: Mapped[text_ | None]
    auth_endpoint: Mapped[str500 | None]
    token_endpoint: Mapped[str500 | None]
    refresh_token_encrypted: Mapped[text_ | None]
    private_key_encrypted: Mapped[text_ | None]
    options: Mapped[json_dict_empty]

    sync_frequency_hours: Mapped[int] = mapped_column(server_default=text("24"))
    grade_passback_enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    roster_sync_enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    content_sync_enabled: Mapped[bool] = mapped_column(server_default=text("true"))

    is_active: Mapped[bool] = mapped_column(server_default=text("true"))
    last_sync_at: Mapped[timestamptz | None]
    last_sync_status: Mapped[str20 | None]
    sync_error_message: Mapped[text_ | None]
    not_before: Mapped[timestamptz | None]
    sync_run_id: Mapped[uuid.UUID | None]
    health_check_url: Mapped[str500 | None]

    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class LMSCourse(Base):
    """A course as last synced from the LMS; ``lms_integration_id`` is NOT NULL.

    ``access_restricted_since`` is set while the LMS lists the course but keeps
    it closed to the token (Canvas: restricted by date, a concluded term): from
    the first sync that found it so until one reads it in full again.  The
    grade drain holds the course's grades meanwhile.
    """

    __tablename__ = "lms_courses"
    __table_args__ = (
        UniqueConstraint("lms_integration_id", "external_course_id"),
        CheckConstraint("grade_level BETWEEN 1 AND 12", name="grade_level_range"),
    )

    id: Mapped[uuid_pk]
    lms_integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lms_integrations.id"), index=True
    )
    external_course_id: Mapped[str100]
    title: Mapped[str200]
    description: Mapped[text_ | None]
    subject: Mapped[str50 | None]
    grade_level: Mapped[int | None]
    instructor_name: Mapped[str200 | None]
    instructor_email: Mapped[str255 | None]
    enrollment_count: Mapped[int] = mapped_column(server_default=text("0"))
    start_date: Mapped[dt.date | None]
    end_date: Mapped[dt.date | None]

    last_synced_at: Mapped[timestamptz | None]
    sync_hash: Mapped[str64 | None]
    raw_data: Mapped[json_dict | None]

    linked_content_ids: Mapped[list[uuid.UUID] | None] = mapped_column(ARRAY(UUID(as_uuid=True)))
    auto_sync_enabled: Mapped[bool] = mapped_column(server_default=text("true"))
    access_restricted_since: Mapped[timestamptz | None]
    deleted_at: Mapped[timestamptz | None]

    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class LMSAssignment(Base):
    """An LMS assignment, possibly linked to ToolboxAI content or a quiz.

    ``lms_course_id`` is NOT NULL.
    """

    __tablename__ = "lms_assignments"
    __table_args__ = (UniqueConstraint("lms_course_id", "external_assignment_id"),)

    id: Mapped[uuid_pk]
    lms_course_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("lms_courses.id"), index=True)
    external_assignment_id: Mapped[str500]
    """500 wide: LTI identifies line items by URL."""
    title: Mapped[str200]
    description: Mapped[text_ | None]
    assignment_type: Mapped[str50 | None]
    points_possible: Mapped[decimal_8_2 | None]
    due_date: Mapped[timestamptz | None]
    unlock_date: Mapped[timestamptz | None]
    lock_date: Mapped[timestamptz | None]

    toolboxai_content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )
    toolboxai_quiz_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("quizzes.id"), index=True
    )
    grade_passback_enabled: Mapped[bool] = mapped_column(server_default=text("true"))

    last_synced_at: Mapped[timestamptz | None]
    sync_hash: Mapped[str64 | None]
    raw_data: Mapped[json_dict | None]
    deleted_at: Mapped[timestamptz | None]

    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class LMSGradePassback(Base):
    """A score to send to the LMS, created with the graded attempt.

    The payload is fixed at creation (``score_timestamp``, ``sourced_id``)
    and resent unchanged on every retry, so the LMS can neither apply it
    twice nor apply a stale score; one row per (attempt, assignment) and
    grade: a regraded attempt gets a row with a later ``score_timestamp``.
    ``lms_assignment_id`` and ``user_id`` are NOT NULL.
    """

    __tablename__ = "lms_grade_passbacks"
    __table_args__ = (
        UniqueConstraint(
            "quiz_attempt_id",
            "lms_assignment_id",
            "score_timestamp",
            name="uq_lms_grade_passbacks_attempt_assignment_timestamp",
        ),
        CheckConstraint("status IN ('pending', 'sending', 'success', 'failed')", name="status"),
        Index("ix_lms_grade_passbacks_due", "status", "next_attempt_at"),
    )

    id: Mapped[uuid_pk]
    lms_assignment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lms_assignments.id"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    external_user_id: Mapped[str100]

    score: Mapped[decimal_8_2 | None]
    points_possible: Mapped[decimal_8_2 | None]
    percentage: Mapped[score_5_2 | None]
    letter_grade: Mapped[str | None] = mapped_column(String(5))
    score_timestamp: Mapped[timestamptz_now]
    sourced_id: Mapped[str100 | None]

    status: Mapped[str20] = mapped_column(server_default=text("'pending'"))
    attempt_count: Mapped[int] = mapped_column(server_default=text("0"))
    last_attempt_at: Mapped[timestamptz | None]
    next_attempt_at: Mapped[timestamptz | None]
    error_message: Mapped[text_ | None]
    response_data: Mapped[json_dict | None]

    quiz_attempt_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("quiz_attempts.id"), index=True
    )
    progress_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("user_progress.id"), index=True
    )

    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class LMSUserLink(Base):
    """Maps one LMS user of an integration to one ``users`` row."""

    __tablename__ = "lms_user_links"
    __table_args__ = (UniqueConstraint("lms_integration_id", "external_user_id"),)

    id: Mapped[uuid_pk]
    lms_integration_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lms_integrations.id", ondelete="CASCADE"), index=True
    )
    external_user_id: Mapped[str100]
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]


class LMSEnrollment(Base):
    """One line of a course roster; dropped students keep their row (``dropped_at``)."""

    __tablename__ = "lms_enrollments"
    __table_args__ = (
        UniqueConstraint("lms_course_id", "external_user_id"),
        CheckConstraint("role IN ('student', 'teacher', 'ta', 'admin', 'observer')", name="role"),
        CheckConstraint(
            "enrollment_state IN ('active', 'inactive', 'invited', 'completed', 'dropped')",
            name="enrollment_state",
        ),
    )

    id: Mapped[uuid_pk]
    lms_course_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("lms_courses.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    external_user_id: Mapped[str100]
    role: Mapped[str20]
    enrollment_state: Mapped[str20] = mapped_column(server_default=text("'active'"))
    sync_hash: Mapped[str64 | None]
    raw_data: Mapped[json_dict | None]
    last_synced_at: Mapped[timestamptz | None]
    dropped_at: Mapped[timestamptz | None]
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
