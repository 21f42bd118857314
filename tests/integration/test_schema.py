"""The constraints of the schema hold in PostgreSQL itself."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import (
    AgentState,
    AgentTask,
    AIAgent,
    CollaborationParticipant,
    CollaborationSession,
    EducationalContent,
    LearningObjective,
    Quiz,
    QuizAttempt,
    QuizOption,
    QuizQuestion,
    User,
    UserSession,
)


@pytest.fixture
def make_user(session: Session) -> Callable[..., User]:
    def make(**values: Any) -> User:
        name = uuid.uuid4().hex[:8]
        user = User(username=name, email=f"{name}@school.test", password_hash="x", **values)
        session.add(user)
        session.flush()
        return user

    return make


@pytest.fixture
def quiz(session: Session, make_user: Callable[..., User]) -> Quiz:
    teacher = make_user(role="teacher")
    quiz = Quiz(title="Fractions", subject="math", grade_level=5, created_by=teacher.id)
    session.add(quiz)
    session.flush()
    return quiz


def test_grade_level_13_is_refused(session: Session) -> None:
    session.add(LearningObjective(title="Too old", subject="math", grade_level=13))
    with pytest.raises(IntegrityError, match="grade_level"):
        session.flush()


def test_duplicate_quiz_attempt_number_is_refused(
    session: Session, quiz: Quiz, make_user: Callable[..., User]
) -> None:
    student = make_user()
    session.add(QuizAttempt(quiz_id=quiz.id, user_id=student.id, attempt_number=1))
    session.flush()
    session.add(QuizAttempt(quiz_id=quiz.id, user_id=student.id, attempt_number=1))
    with pytest.raises(IntegrityError, match="uq_quiz_attempts_quiz_id_user_id_attempt_number"):
        session.flush()


def test_deleting_a_quiz_cascades_to_questions_and_options(session: Session, quiz: Quiz) -> None:
    question = QuizQuestion(
        quiz_id=quiz.id,
        question_type="multiple_choice",
        question_text="1/2 + 1/4?",
        order_index=0,
    )
    session.add(question)
    session.flush()
    session.add(
        QuizOption(question_id=question.id, option_text="3/4", is_correct=True, order_index=0)
    )
    session.flush()
    session.execute(text("DELETE FROM quizzes WHERE id = :id"), {"id": quiz.id})
    assert session.scalar(select(QuizQuestion).where(QuizQuestion.quiz_id == quiz.id)) is None
    assert session.scalar(select(text("count(*)")).select_from(QuizOption)) == 0


def test_deleting_a_user_cascades_to_sessions(
    session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    session.add(
        UserSession(
            user_id=user.id, token=uuid.uuid4().hex, expires_at=text("now() + interval '1 hour'")
        )
    )
    session.flush()
    session.execute(text("DELETE FROM users WHERE id = :id"), {"id": user.id})
    assert session.scalar(select(text("count(*)")).select_from(UserSession)) == 0


def test_deleting_content_cascades_to_objective_links(
    session: Session, make_user: Callable[..., User]
) -> None:
    content = EducationalContent(
        title="Volcanoes",
        subject="science",
        grade_level=6,
        environment_type="island",
        content_data={"sections": []},
    )
    objective = LearningObjective(title="Explain eruptions", subject="science", grade_level=6)
    content.objectives.append(objective)
    session.add(content)
    session.flush()
    session.execute(text("DELETE FROM educational_content WHERE id = :id"), {"id": content.id})
    links = session.execute(text("SELECT count(*) FROM content_objectives")).scalar_one()
    assert links == 0
    assert session.get(LearningObjective, objective.id) is not None


def test_collaboration_participants_unique_per_session_and_user(
    session: Session, make_user: Callable[..., User]
) -> None:
    owner = make_user(role="teacher")
    room = CollaborationSession(session_name="Lab", session_type="live_class", owner_id=owner.id)
    session.add(room)
    session.flush()
    session.add(CollaborationParticipant(session_id=room.id, user_id=owner.id))
    session.flush()
    session.add(CollaborationParticipant(session_id=room.id, user_id=owner.id))
    with pytest.raises(IntegrityError, match="uq_collaboration_participants"):
        session.flush()


def test_agent_task_constraints_and_state_cascade(session: Session) -> None:
    agent = session.scalars(select(AIAgent).where(AIAgent.agent_type == "echo")).one()
    task = AgentTask(
        agent_id=agent.id, task_type="echo", task_name="t", input_data={}, idempotency_key="k-1"
    )
    session.add(task)
    session.flush()
    session.add(
        AgentState(
            agent_id=agent.id,
            task_id=task.id,
            workflow_id=task.id,
            state_type="situation",
            state_data={},
            sequence_number=1,
        )
    )
    session.flush()
    session.execute(text("DELETE FROM agent_tasks WHERE id = :id"), {"id": task.id})
    assert session.scalar(select(text("count(*)")).select_from(AgentState)) == 0
    session.add(
        AgentTask(
            agent_id=agent.id, task_type="echo", task_name="t", input_data={}, status="sleeping"
        )
    )
    with pytest.raises(IntegrityError, match="ck_agent_tasks_status"):
        session.flush()


def test_idempotency_key_is_unique(session: Session) -> None:
    agent = session.scalars(select(AIAgent).where(AIAgent.agent_type == "echo")).one()
    for _ in range(2):
        session.add(
            AgentTask(
                agent_id=agent.id,
                task_type="echo",
                task_name="t",
                input_data={},
                idempotency_key="same",
            )
        )
    with pytest.raises(IntegrityError, match="uq_agent_tasks_idempotency_key"):
        session.flush()


def test_updated_at_is_maintained_by_the_database(
    session: Session, make_user: Callable[..., User]
) -> None:
    user = make_user()
    session.commit()
    before = session.execute(
        text("SELECT updated_at FROM users WHERE id = :id"), {"id": user.id}
    ).scalar_one()
    time.sleep(0.01)
    session.execute(text("UPDATE users SET bio = 'plain SQL' WHERE id = :id"), {"id": user.id})
    session.commit()
    after = session.execute(
        text("SELECT updated_at FROM users WHERE id = :id"), {"id": user.id}
    ).scalar_one()
    assert after > before


def test_hot_query_indexes_exist(session: Session) -> None:
    names = set(session.execute(text("SELECT indexname FROM pg_indexes")).scalars())
    assert {
        "ix_agent_tasks_claim",
        "ix_agent_tasks_undispatched",
        "ix_agent_tasks_workflow_id",
        "ix_agent_tasks_parent_task_id",
        "ix_agent_tasks_agent_id",
    } <= names
