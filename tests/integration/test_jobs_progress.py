"""Learning progress from quiz attempts, on real PostgreSQL."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from models.errors import NotFound
from tests.integration.ops_support import content, count, insert, twice_at_once, user
from workers.jobs.progress import catch_up, pending_attempts, record_attempt

HOUR = 3600
PROGRESSION = {
    "start": "easy",
    "rules": [
        {"trigger": "correct_streak", "threshold": 2, "action": "harder"},
        {"trigger": "incorrect_streak", "threshold": 2, "action": "easier"},
    ],
}


def quiz(connection: Connection, content_id: uuid.UUID | None, **extra: Any) -> uuid.UUID:
    json = ("difficulty_progression",) if "difficulty_progression" in extra else ()
    values = {"title": "check", "subject": "science", "grade_level": 5, "content_id": content_id}
    result: uuid.UUID = insert(connection, "quizzes", json=json, **values, **extra)
    return result


def attempt(
    connection: Connection,
    quiz_id: uuid.UUID,
    user_id: uuid.UUID,
    number: int,
    score: float | None,
    hours_ago: float,
    **extra: Any,
) -> uuid.UUID:
    json = ("answers",) if "answers" in extra else ()
    result: uuid.UUID = insert(
        connection, "quiz_attempts", json=json, quiz_id=quiz_id, user_id=user_id,
        attempt_number=number, score=score, started_at_ago=hours_ago * HOUR + 600,
        completed_at_ago=None if score is None else hours_ago * HOUR, **extra,
    )  # fmt: skip
    return result


@pytest.fixture
def school(engine: Engine) -> dict[str, Any]:
    with engine.begin() as connection:
        lesson = content(connection)
        following = content(connection, difficulty="hard")
        content(connection, difficulty="easy", status="draft")  # never recommended
        student, peer = user(connection), user(connection)
        quiz_a, quiz_b = quiz(connection, lesson), quiz(connection, lesson)
        attempts = [
            attempt(connection, quiz_a, student, 1, 50, 3, time_taken=300),
            attempt(connection, quiz_a, student, 2, 80, 2),
            attempt(connection, quiz_b, student, 1, 95, 1),
        ]
        attempt(connection, quiz_a, peer, 1, 60, 5)
        attempt(connection, quiz_a, peer, 2, 90, 4)
        unfinished = attempt(connection, quiz_b, peer, 1, None, 0.1)
    return {
        "lesson": lesson, "following": following, "student": student, "quiz_a": quiz_a,
        "attempts": attempts, "unfinished": unfinished,
    }  # fmt: skip


def analytics(engine: Engine, attempt_id: uuid.UUID) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT * FROM educational_analytics WHERE context_data->>'attempt_id' = :id"),
            {"id": str(attempt_id)},
        ).one()


def progress(engine: Engine, user_id: uuid.UUID, content_id: uuid.UUID) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT * FROM user_progress WHERE user_id = :u AND content_id = :c"),
            {"u": user_id, "c": content_id},
        ).one()


def record_all(engine: Engine, ids: list[uuid.UUID]) -> None:
    for attempt_id in ids:
        with engine.begin() as connection:
            assert record_attempt(connection, attempt_id)


def test_attempts_become_analytics_and_progress(engine: Engine, school: dict[str, Any]) -> None:
    first, second, third = school["attempts"]
    record_all(engine, school["attempts"])
    one = analytics(engine, first)
    assert one.metric_type == "quiz_score" and one.metric_value == Decimal("50")
    assert one.time_to_completion_seconds == 300 and one.attempts_before_success is None
    assert one.peer_average == Decimal("75") and one.historical_average is None
    assert one.benchmark_value == 70 and one.difficulty_level == "medium"
    two = analytics(engine, second)
    assert two.attempts_before_success == 1 and two.historical_average == Decimal("50")
    assert two.time_to_completion_seconds == 600
    three = analytics(engine, third)
    assert three.attempts_before_success == 0 and three.historical_average == Decimal("65")
    assert three.peer_average is None

    row = progress(engine, school["student"], school["lesson"])
    assert row.progress_type == "quiz" and row.completion_percentage == 100
    assert (row.attempts_count, row.best_score) == (3, Decimal("95"))
    assert (row.current_streak, row.max_streak) == (2, 2)
    assert row.mastery_level == "proficient"  # best per quiz 80 and 95: 87.5
    assert row.time_spent_seconds == 300 + 600 + 600
    assert row.next_recommended_content == school["following"]
    assert row.performance_trends["recent_scores"] == [50.0, 80.0, 95.0]
    assert row.performance_trends["trend"] == "improving"


def test_recording_again_never_double_counts(engine: Engine, school: dict[str, Any]) -> None:
    record_all(engine, school["attempts"])
    before = progress(engine, school["student"], school["lesson"])
    record_all(engine, school["attempts"] * 2)
    after = progress(engine, school["student"], school["lesson"])
    assert count(engine, "SELECT count(*) FROM educational_analytics") == 3
    assert (after.attempts_count, after.time_spent_seconds) == (3, before.time_spent_seconds)
    assert count(engine, "SELECT count(*) FROM user_progress") == 1


def test_unfinished_or_unknown_attempts(engine: Engine, school: dict[str, Any]) -> None:
    with engine.begin() as connection:
        assert record_attempt(connection, school["unfinished"]) is False
        with pytest.raises(NotFound):
            record_attempt(connection, uuid.uuid4())


def test_catch_up_finds_new_and_regraded_attempts(engine: Engine, school: dict[str, Any]) -> None:
    assert catch_up(engine) == {"recorded": 5, "failed": 0}  # the student's 3 and the peer's 2
    with engine.connect() as connection:
        assert pending_attempts(connection, 100) == []
    first = school["attempts"][0]
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE quiz_attempts SET score = 75 WHERE id = :id"), {"id": first}
        )
    assert catch_up(engine) == {"recorded": 1, "failed": 0}
    assert analytics(engine, first).metric_value == Decimal("75")
    row = progress(engine, school["student"], school["lesson"])
    assert (row.current_streak, row.max_streak) == (3, 3)
    assert row.next_recommended_content == school["following"]


def test_struggling_student_is_sent_back_to_the_same_content(
    engine: Engine, school: dict[str, Any]
) -> None:
    with engine.begin() as connection:
        learner = user(connection)
        only = attempt(connection, school["quiz_a"], learner, 1, 40, 1)
        record_attempt(connection, only)
    row = progress(engine, learner, school["lesson"])
    assert row.mastery_level == "novice" and row.completion_percentage == 0
    assert row.next_recommended_content == school["lesson"]


def test_adaptive_attempt_records_difficulty_adjustments(engine: Engine) -> None:
    with engine.begin() as connection:
        learner = user(connection)
        adaptive = quiz(connection, None, is_adaptive=True, difficulty_progression=PROGRESSION)
        questions = []
        for index in range(6):
            question = insert(
                connection, "quiz_questions", quiz_id=adaptive, question_type="multiple_choice",
                question_text=f"Question {index}?", correct_answer="Right", order_index=index,
            )  # fmt: skip
            right = insert(
                connection, "quiz_options", question_id=question, option_text="Right",
                is_correct=True, order_index=0,
            )  # fmt: skip
            insert(
                connection, "quiz_options", question_id=question, option_text="Wrong",
                order_index=1,
            )  # fmt: skip
            questions.append((str(question), str(right)))
        answers = {
            questions[0][0]: {"option_ids": [questions[0][1]]},
            questions[1][0]: {"answer": " right "},
            questions[2][0]: {"correct": True},
            questions[3][0]: {"answer": "Wrong"},
            questions[4][0]: "Wrong",
        }
        done = attempt(connection, adaptive, learner, 1, 60, 1, answers=answers)
        record_attempt(connection, done)
        adjustments = connection.execute(
            text("SELECT adaptive_adjustments FROM quiz_attempts WHERE id = :id"), {"id": done}
        ).scalar_one()
    assert adjustments["start"] == "easy" and adjustments["final"] == "easy"
    assert (adjustments["answered"], adjustments["correct"]) == (5, 3)
    assert [(a["after_answer"], a["from"], a["to"]) for a in adjustments["adjustments"]] == [
        (2, "easy", "medium"),
        (5, "medium", "easy"),
    ]
    assert analytics(engine, done).difficulty_level == "easy"
    assert count(engine, "SELECT count(*) FROM user_progress") == 0  # a quiz without content


def test_two_catch_ups_at_once_record_each_attempt_once(engine: Engine) -> None:
    with engine.begin() as connection:
        lesson = content(connection)
        quizzes = [quiz(connection, lesson) for _ in range(2)]
        learners = [user(connection) for _ in range(6)]
        for index, learner in enumerate(learners):
            for number in range(1, 4):
                score = 40 + 10 * number + index
                attempt(connection, quizzes[number % 2], learner, number, score, 10 - number)
    results = twice_at_once(lambda: catch_up(engine, batch=4))
    assert results[0]["recorded"] + results[1]["recorded"] == 18
    assert count(engine, "SELECT count(*) FROM educational_analytics") == 18
    assert count(engine, "SELECT count(*) FROM user_progress WHERE attempts_count = 3") == 6
