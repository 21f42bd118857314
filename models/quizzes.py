"""Quizzes, their questions and options, and the students' attempts.

A quiz owns its questions and a question its options: they are loaded in
``order_index`` order and deleted with their parent (in the ORM and by
``ON DELETE CASCADE``). Columns that have a default are NOT NULL.
"""

from __future__ import annotations

import uuid

from sqlalchemy import CheckConstraint, ForeignKey, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import (
    Base,
    created_at,
    json_dict,
    score_5_2,
    str20,
    str50,
    str200,
    text_,
    timestamptz,
    timestamptz_now,
    updated_at,
    uuid_pk,
)


class Quiz(Base):
    """An assessment, usually attached to a piece of content."""

    __tablename__ = "quizzes"
    __table_args__ = (
        CheckConstraint("grade_level BETWEEN 1 AND 12", name="grade_level_range"),
        CheckConstraint("passing_score BETWEEN 0 AND 100", name="passing_score_range"),
    )

    id: Mapped[uuid_pk]
    title: Mapped[str200]
    description: Mapped[text_ | None]
    subject: Mapped[str50]
    grade_level: Mapped[int]
    content_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("educational_content.id"), index=True
    )
    time_limit: Mapped[int | None]
    """Seconds."""
    passing_score: Mapped[int] = mapped_column(server_default=text("70"))
    max_attempts: Mapped[int] = mapped_column(server_default=text("3"))
    shuffle_questions: Mapped[bool] = mapped_column(server_default=text("true"))
    shuffle_options: Mapped[bool] = mapped_column(server_default=text("true"))
    show_results: Mapped[bool] = mapped_column(server_default=text("true"))
    is_adaptive: Mapped[bool] = mapped_column(server_default=text("false"))
    difficulty_progression: Mapped[json_dict | None]
    created_by: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]

    questions: Mapped[list[QuizQuestion]] = relationship(
        back_populates="quiz",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="QuizQuestion.order_index",
    )


class QuizQuestion(Base):
    """One question of a quiz; ``quiz_id`` is NOT NULL (no orphan questions)."""

    __tablename__ = "quiz_questions"
    __table_args__ = (
        CheckConstraint(
            "question_type IN ('multiple_choice', 'multi_select', 'true_false', 'short_answer')",
            name="question_type",
        ),
        CheckConstraint("difficulty IN ('easy', 'medium', 'hard')", name="difficulty"),
        CheckConstraint("points >= 0", name="points_non_negative"),
    )

    id: Mapped[uuid_pk]
    quiz_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("quizzes.id", ondelete="CASCADE"), index=True
    )
    question_type: Mapped[str20]
    question_text: Mapped[text_]
    correct_answer: Mapped[text_ | None]
    difficulty: Mapped[str20] = mapped_column(server_default=text("'medium'"))
    points: Mapped[int] = mapped_column(server_default=text("1"))
    time_limit: Mapped[int | None]
    """Seconds, for this question alone."""
    hint: Mapped[text_ | None]
    explanation: Mapped[text_ | None]
    order_index: Mapped[int]
    question_data: Mapped[json_dict | None]
    created_at: Mapped[created_at]

    quiz: Mapped[Quiz] = relationship(back_populates="questions")
    options: Mapped[list[QuizOption]] = relationship(
        back_populates="question",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="QuizOption.order_index",
    )


class QuizOption(Base):
    """One answer choice; ``question_id`` is NOT NULL (no orphan options)."""

    __tablename__ = "quiz_options"

    id: Mapped[uuid_pk]
    question_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("quiz_questions.id", ondelete="CASCADE"), index=True
    )
    option_text: Mapped[text_]
    is_correct: Mapped[bool] = mapped_column(server_default=text("false"))
    explanation: Mapped[text_ | None]
    order_index: Mapped[int]
    created_at: Mapped[created_at]

    question: Mapped[QuizQuestion] = relationship(back_populates="options")


class QuizAttempt(Base):
    """One student's attempt at a quiz; the source of grade passbacks.

    ``quiz_id`` and ``user_id`` are NOT NULL: an attempt means nothing
    without them and they form the unique key. ``passed`` stays NULL until
    the attempt is graded.
    """

    __tablename__ = "quiz_attempts"
    __table_args__ = (
        UniqueConstraint("quiz_id", "user_id", "attempt_number"),
        CheckConstraint("score BETWEEN 0 AND 100", name="score_range"),
        CheckConstraint("attempt_number >= 1", name="attempt_number_positive"),
    )

    id: Mapped[uuid_pk]
    quiz_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quizzes.id"), index=True)
    user_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("users.id"), index=True)
    session_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("user_sessions.id"), index=True)
    attempt_number: Mapped[int]
    started_at: Mapped[timestamptz_now]
    completed_at: Mapped[timestamptz | None]
    score: Mapped[score_5_2 | None]
    passed: Mapped[bool | None]
    time_taken: Mapped[int | None]
    """Seconds."""
    answers: Mapped[json_dict | None]
    feedback: Mapped[json_dict | None]
    adaptive_adjustments: Mapped[json_dict | None]
