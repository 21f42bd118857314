"""The pure parts of the platform jobs: error hashing, adaptive replay, progress maths."""

from __future__ import annotations

import uuid

import pytest

from agents.engine import TaskFailure
from agents.schemas import DifficultyProgression
from workers.dispatch import Envelope
from workers.jobs import adaptive
from workers.jobs.errors import error_hash, failure_severity, normalise_message
from workers.jobs.progress import mastery_level, streaks, trend
from workers.jobs.status import brief


def test_messages_lose_ids_and_numbers_before_hashing() -> None:
    one = f"task {uuid.uuid4()} failed on attempt 3 after 12.5s (0x7f3a)"
    two = f"task {uuid.uuid4()} failed on attempt 4 after 40s (0x11)"
    assert normalise_message(one) == "task <id> failed on attempt <n> after <n>s (<hex>)"
    assert error_hash("E", one, "svc") == error_hash("E", two, "svc")
    assert error_hash("E", one, "svc") != error_hash("F", one, "svc")
    assert error_hash("E", one, "svc") != error_hash("E", one, "other")
    assert error_hash("E", "lesson about cats", "svc") != error_hash(
        "E", "lesson about dogs", "svc"
    )
    assert len(error_hash("E", one, "svc")) == 64


@pytest.mark.parametrize(
    ("status", "kind", "severity"),
    [
        ("retrying", "EchoFailure", "low"),
        ("failed", "EchoFailure", "high"),
        ("failed", "RedeliveryExceeded", "critical"),
        ("failed", "ConfigurationError", "critical"),  # a chat model that cannot be built
    ],
)
def test_failure_severity(status: str, kind: str, severity: str) -> None:
    failure = TaskFailure(uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), "echo", status, {"type": kind})
    assert failure_severity(failure) == severity


def test_flower_sees_ids_and_the_agent_never_the_payload() -> None:
    task, workflow = uuid.uuid4(), uuid.uuid4()
    assert Envelope(task, 5, 60, "echo", task).argsrepr() == f"task_id={task} agent=echo"
    described = Envelope(task, 5, 60, "quiz", workflow).argsrepr()
    assert described == f"task_id={task} agent=quiz workflow={workflow}"


def _question(index: int) -> adaptive.QuestionKey:
    return adaptive.QuestionKey(
        uuid.UUID(int=index), index, "Paris", frozenset({f"opt-{index}"}), frozenset({"paris"})
    )


def test_answers_are_graded_by_flag_option_ids_or_text() -> None:
    question = _question(1)
    assert adaptive.is_correct(question, {"correct": False}) is False
    assert adaptive.is_correct(question, {"option_ids": ["opt-1"]}) is True
    assert adaptive.is_correct(question, {"option_ids": ["opt-1", "opt-9"]}) is False
    assert adaptive.is_correct(question, {"answer": "  PARIS "}) is True
    assert adaptive.is_correct(question, "Lyon") is False
    assert adaptive.is_correct(question, None) is None
    assert adaptive.is_correct(question, {"answer": ""}) is None
    short = adaptive.QuestionKey(uuid.UUID(int=2), 2, "H2O", frozenset(), frozenset())
    assert adaptive.is_correct(short, "h2o") is True


def test_outcomes_follow_the_answer_order() -> None:
    questions = [_question(i) for i in range(3)]
    answers = {
        str(questions[0].id): {"answer": "Paris", "order": 3},
        str(questions[1].id): {"answer": "Rome", "order": 1},
        str(questions[2].id): {"answer": "Paris", "order": 2},
    }
    assert adaptive.outcomes(questions, answers) == [False, True, True]
    assert adaptive.outcomes(questions, None) == []


def test_replay_moves_one_step_per_streak_and_stays_in_bounds() -> None:
    rules = DifficultyProgression.model_validate(
        {
            "start": "medium",
            "rules": [
                {"trigger": "correct_streak", "threshold": 2, "action": "harder"},
                {"trigger": "incorrect_streak", "threshold": 3, "action": "easier"},
            ],
        }
    )
    result = adaptive.replay(rules, [True, True, True, True, False, False, False])
    moves = [(a["after_answer"], a["from"], a["to"]) for a in result["adjustments"]]
    assert moves == [(2, "medium", "hard"), (7, "hard", "medium")]
    assert result["final"] == "medium" and (result["answered"], result["correct"]) == (7, 4)
    assert adaptive.replay(rules, [])["final"] == "medium"
    assert adaptive.parse_progression({"start": "impossible", "rules": []}) is None
    assert adaptive.parse_progression(None) is None


def test_progress_maths() -> None:
    assert [mastery_level(s) for s in (0, 49.9, 50, 75, 89.99, 90, 100)] == [
        "novice", "novice", "developing", "proficient", "proficient", "advanced", "advanced",
    ]  # fmt: skip
    assert streaks([True, True, False, True, True, True, False]) == (0, 3)
    assert streaks([False, True, True]) == (2, 2)
    assert streaks([]) == (0, 0)
    assert trend([70.0]) == "steady"
    assert trend([60.0, 62.0, 61.0, 80.0]) == "improving"
    assert trend([90.0, 70.0]) == "declining"


def test_status_cells_elide_url_queries_so_the_cause_shows() -> None:
    """An LMS failure starts with its request URL; Canvas's ``include[]=...`` filled the
    120 characters ``toolbox status`` showed and the cause never did."""
    query = "include%5B%5D=teachers&include%5B%5D=public_description&per_page=100"
    message = f"GET https://lms.example.edu/api/v1/courses?{query} failed: HTTP 429 (wait 900s)"
    assert brief(message) == (
        "GET https://lms.example.edu/api/v1/courses?... failed: HTTP 429 (wait 900s)"
    )
    cut = brief("word " * 100)
    assert len(cut) == 160 and cut.endswith("...")
