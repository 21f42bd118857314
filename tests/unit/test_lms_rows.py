"""Change detection, roster merging and the passback retry verdicts (pure functions)."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest

from lms.base import (
    Assignment,
    ConnectionConfig,
    Course,
    Credentials,
    GradeSubmission,
    RosterEntry,
)
from lms.drain import backoff, judge
from lms.passback import ClaimedGrade, PassbackPolicy
from lms.registry import make_client
from lms.rows import assignment_values, course_values, merge_roster, sync_hash
from models.errors import (
    ConfigurationError,
    LMSAuthRejected,
    LMSRequestRejected,
    LMSUnavailable,
    NotSupported,
    ValidationFailed,
)

NOW = dt.datetime(2026, 11, 2, 12, 0, tzinfo=dt.UTC)


def test_the_hash_ignores_spelling_and_raw_data_but_sees_every_value() -> None:
    due = dt.datetime(2026, 9, 1, 23, 59, tzinfo=dt.UTC)
    base = Assignment("7", "Quiz", points_possible=Decimal("10"), due_at=due, raw={"a": 1})
    eastern = due.astimezone(dt.timezone(dt.timedelta(hours=-5)))
    same = Assignment("7", "Quiz ", points_possible=Decimal("10.000"), due_at=eastern, raw={"b": 2})
    changed = Assignment("7", "Quiz", points_possible=Decimal("10.5"), due_at=due)
    assert sync_hash(assignment_values(base)) == sync_hash(assignment_values(same))
    assert sync_hash(assignment_values(base)) != sync_hash(assignment_values(changed))
    assert len(sync_hash(assignment_values(base))) == 64


def test_values_fit_their_columns_and_overlong_ids_are_errors_not_truncated_keys() -> None:
    values = course_values(Course("c1", "T" * 300, grade_level=14, subject="S" * 80))
    assert len(values["title"]) == 200 and len(values["subject"]) == 50
    assert values["grade_level"] is None
    with pytest.raises(ValidationFailed, match="101 characters long"):
        course_values(Course("x" * 101, "Too long an id"))


def test_a_user_listed_twice_keeps_the_liveliest_state_then_the_strongest_role() -> None:
    entries = [
        RosterEntry("u2", "student", "dropped"),
        RosterEntry("u1", "student", "inactive"),
        RosterEntry("u2", "ta", "active"),
        RosterEntry("u1", "teacher", "inactive"),
        RosterEntry("u1", "student", "active"),
    ]
    merged = merge_roster(entries)
    assert [(e.external_user_id, e.role, e.state) for e in merged] == [
        ("u1", "student", "active"),
        ("u2", "ta", "active"),
    ]


def grade(attempts: int = 1, created: dt.datetime = NOW) -> ClaimedGrade:
    submission = GradeSubmission("c", "a", "u", Decimal(8), Decimal(10), NOW, "sid")
    return ClaimedGrade(uuid.uuid4(), uuid.uuid4(), NOW, attempts, created, submission)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (LMSUnavailable("503", retry_after=2.0), "pending"),
        (ConfigurationError("key missing"), "pending"),
        (LMSRequestRejected("401", status_code=401), "pending"),
        (LMSAuthRejected("invalid_client", status_code=400), "pending"),
        (LMSRequestRejected("404 not enrolled", status_code=404), "failed"),
        (NotSupported("no"), "failed"),
        (ValidationFailed("odd answer"), "pending"),
        (RuntimeError("bug"), "pending"),
    ],
)
def test_verdicts_by_error_class(error: Exception, status: str) -> None:
    assert judge(error, grade(), PassbackPolicy(), NOW).status == status


def test_malformed_answers_and_old_grades_give_up_with_a_reason() -> None:
    policy = PassbackPolicy()
    assert judge(ValidationFailed("odd"), grade(attempts=5), policy, NOW).status == "failed"
    old = grade(created=NOW - dt.timedelta(days=8))
    verdict = judge(LMSUnavailable("down"), old, policy, NOW)
    assert verdict.status == "failed" and verdict.error.startswith("gave up after 1 attempts")


def test_backoff_grows_is_capped_and_honours_retry_after() -> None:
    policy = PassbackPolicy(backoff_base_seconds=30, backoff_cap_seconds=900)
    assert 15 <= backoff(1, policy) <= 30
    assert 120 <= backoff(4, policy) <= 240
    assert 450 <= backoff(40, policy) <= 900
    assert backoff(1, policy, retry_after=120) >= 120
    assert backoff(1, policy, retry_after=10_000) <= 900


def test_an_unknown_platform_names_the_supported_ones() -> None:
    with pytest.raises(NotSupported, match="supported: canvas, schoology, moodle"):
        make_client(ConnectionConfig("d2l", "https://lms", Credentials()))
