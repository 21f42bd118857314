"""Learning progress from completed quiz attempts.

``record_attempt`` recomputes everything from the attempts themselves, so
calling it again (a retry, the catch-up job, a re-graded attempt) rewrites
the same values instead of counting twice:

- ``quiz_attempts.adaptive_adjustments`` (adaptive quizzes): the quiz's
  ``difficulty_progression`` rules replayed over the answers;
- ``user_progress`` (one ``'quiz'`` row per user and content, over all the
  content's quizzes): completion (share of its quizzes passed), attempts,
  best score, streaks of passed attempts, mastery, time spent, last
  interaction, trend and the next recommended content;
- ``educational_analytics``: one ``quiz_score`` row per attempt (its id in
  ``context_data.attempt_id``) with time to completion, attempts before
  success, the peer average on the same quiz and the user's earlier average.

That analytics row is also the marker: the catch-up job processes completed
attempts that have no row with their current score.  Calls for one user and
content are serialised by a transaction-level advisory lock.
"""

from __future__ import annotations

import logging
import time
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, RowMapping, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB

from models.errors import NotFound
from workers.jobs import adaptive
from workers.jobs.errors import ErrorEvent, record_error

log = logging.getLogger(__name__)

PROGRESS_TYPE = "quiz"
METRIC_TYPE = "quiz_score"
MASTERY_LEVELS = ((90, "advanced"), (75, "proficient"), (50, "developing"), (0, "novice"))
"""Lowest average best score (per quiz of the content) for each mastery level."""
TREND_POINTS = 5.0
CATCH_UP_SECONDS = 30.0
RECENT_SCORES = 10

_ATTEMPT = text(
    "SELECT a.id, a.quiz_id, a.user_id, a.attempt_number, a.started_at, a.completed_at,"
    " a.score, coalesce(a.passed, a.score >= q.passing_score) AS passed, a.answers,"
    " coalesce(a.time_taken, ceil(extract(epoch FROM a.completed_at - a.started_at))::int)"
    " AS seconds, q.content_id, q.passing_score, q.subject, q.grade_level, q.is_adaptive,"
    " q.difficulty_progression, c.difficulty_level AS content_difficulty"
    " FROM quiz_attempts a JOIN quizzes q ON q.id = a.quiz_id"
    " LEFT JOIN educational_content c ON c.id = q.content_id WHERE a.id = :id"
)


def mastery_level(average_best: float) -> str:
    return next(level for floor, level in MASTERY_LEVELS if average_best >= floor)


def streaks(passes: list[bool]) -> tuple[int, int]:
    """(current, longest) runs of passed attempts, oldest first."""
    current = longest = 0
    for passed in passes:
        current = current + 1 if passed else 0
        longest = max(longest, current)
    return current, longest


def trend(scores: list[float]) -> str:
    if len(scores) < 2:
        return "steady"
    earlier = scores[-4:-1]
    delta = scores[-1] - sum(earlier) / len(earlier)
    if delta > TREND_POINTS:
        return "improving"
    return "declining" if delta < -TREND_POINTS else "steady"


def record_attempt(connection: Connection, attempt_id: uuid.UUID) -> bool:
    """Bring progress and analytics in line with attempt ``attempt_id`` (never commits).

    Returns False when the attempt is not completed and graded yet.
    """
    attempt = connection.execute(_ATTEMPT, {"id": attempt_id}).mappings().one_or_none()
    if attempt is None:
        raise NotFound(f"quiz attempt {attempt_id} does not exist")
    if attempt["completed_at"] is None or attempt["score"] is None:
        return False
    scope = attempt["content_id"] or attempt["quiz_id"]
    connection.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 23))"),
        {"key": f"progress:{attempt['user_id']}:{scope}"},
    )
    level = _adaptive(connection, attempt)
    _analytics(connection, attempt, level or attempt["content_difficulty"])
    if attempt["content_id"] is not None:
        _progress(connection, attempt, level or attempt["content_difficulty"])
    return True


def _adaptive(connection: Connection, attempt: RowMapping) -> str | None:
    """Write the attempt's difficulty adjustments; return the level it ended at."""
    progression = adaptive.parse_progression(attempt["difficulty_progression"])
    if not attempt["is_adaptive"] or progression is None:
        return None
    rows = connection.execute(
        text(
            "SELECT q.id, q.order_index, q.correct_answer, coalesce(array_agg(o.id::text)"
            " FILTER (WHERE o.is_correct), '{}') AS option_ids, coalesce(array_agg(o.option_text)"
            " FILTER (WHERE o.is_correct), '{}') AS option_texts FROM quiz_questions q"
            " LEFT JOIN quiz_options o ON o.question_id = q.id WHERE q.quiz_id = :quiz"
            " GROUP BY q.id ORDER BY q.order_index"
        ),
        {"quiz": attempt["quiz_id"]},
    ).all()
    questions = [
        adaptive.QuestionKey(
            row.id,
            row.order_index,
            row.correct_answer,
            frozenset(row.option_ids),
            frozenset(" ".join(t.split()).casefold() for t in row.option_texts),
        )
        for row in rows
    ]
    result = adaptive.replay(progression, adaptive.outcomes(questions, attempt["answers"]))
    connection.execute(
        text(
            "UPDATE quiz_attempts SET adaptive_adjustments = :result WHERE id = :id"
            " AND adaptive_adjustments IS DISTINCT FROM :result"
        ).bindparams(bindparam("result", type_=JSONB)),
        {"id": attempt["id"], "result": result},
    )
    final: str = result["final"]
    return final


def _analytics(connection: Connection, attempt: RowMapping, difficulty: str | None) -> None:
    params = {"quiz": attempt["quiz_id"], "user": attempt["user_id"], "id": attempt["id"]}
    history = connection.execute(
        text(
            "SELECT id, coalesce(passed, score >= :passing) AS passed FROM quiz_attempts"
            " WHERE quiz_id = :quiz AND user_id = :user AND completed_at IS NOT NULL"
            " AND score IS NOT NULL ORDER BY completed_at, attempt_number"
        ),
        {**params, "passing": attempt["passing_score"]},
    ).all()
    position = [row.id for row in history].index(attempt["id"])
    first_pass = next((i for i, row in enumerate(history) if row.passed), None)
    before_success = first_pass if first_pass is not None and first_pass <= position else None
    peer, mine = connection.execute(
        text(
            "SELECT (SELECT avg(score) FROM quiz_attempts WHERE quiz_id = :quiz"
            " AND user_id <> :user AND completed_at IS NOT NULL AND score IS NOT NULL),"
            " (SELECT avg(score) FROM quiz_attempts WHERE user_id = :user AND id <> :id"
            " AND score IS NOT NULL AND completed_at < :completed)"
        ),
        {**params, "completed": attempt["completed_at"]},
    ).one()
    values = {
        **params,
        "content": attempt["content_id"],
        "score": attempt["score"],
        "subject": attempt["subject"],
        "grade": attempt["grade_level"],
        "difficulty": difficulty,
        "seconds": attempt["seconds"],
        "before_success": before_success,
        "peer": peer,
        "mine": mine,
        "benchmark": attempt["passing_score"],
        "context": {
            "attempt_id": str(attempt["id"]),
            "attempt_number": attempt["attempt_number"],
            "passed": bool(attempt["passed"]),
        },
    }
    existing = connection.execute(
        text(
            "SELECT id FROM educational_analytics WHERE quiz_id = :quiz AND user_id = :user"
            " AND metric_type = :metric AND context_data->>'attempt_id' = :attempt"
            " ORDER BY recorded_at LIMIT 1"
        ),
        {**params, "metric": METRIC_TYPE, "attempt": str(attempt["id"])},
    ).scalar_one_or_none()
    columns = (
        "content_id = :content, metric_value = :score, subject = :subject, grade_level = :grade,"
        " difficulty_level = :difficulty, time_to_completion_seconds = :seconds,"
        " attempts_before_success = :before_success, peer_average = :peer,"
        " historical_average = :mine, benchmark_value = :benchmark, context_data = :context,"
        " calculated_at = now()"
    )
    statement = (
        f"UPDATE educational_analytics SET {columns} WHERE id = :row"
        if existing is not None
        else "INSERT INTO educational_analytics (user_id, content_id, quiz_id, metric_type,"
        " metric_value, metric_unit, subject, grade_level, difficulty_level, activity_type,"
        " time_to_completion_seconds, attempts_before_success, peer_average, historical_average,"
        " benchmark_value, context_data) VALUES (:user, :content, :quiz, :metric, :score,"
        " 'percentage', :subject, :grade, :difficulty, 'quiz', :seconds, :before_success,"
        " :peer, :mine, :benchmark, :context)"
    )
    connection.execute(
        text(statement).bindparams(bindparam("context", type_=JSONB)),
        {**values, "row": existing, "metric": METRIC_TYPE},
    )


def _progress(connection: Connection, attempt: RowMapping, difficulty: str | None) -> None:
    key = {"user": attempt["user_id"], "content": attempt["content_id"]}
    rows = connection.execute(
        text(
            "SELECT a.quiz_id, a.score, coalesce(a.passed, a.score >= q.passing_score) AS passed,"
            " a.completed_at, coalesce(a.time_taken, ceil(extract(epoch FROM a.completed_at"
            " - a.started_at))::int, 0) AS seconds FROM quiz_attempts a"
            " JOIN quizzes q ON q.id = a.quiz_id WHERE q.content_id = :content"
            " AND a.user_id = :user AND a.completed_at IS NOT NULL AND a.score IS NOT NULL"
            " ORDER BY a.completed_at, a.attempt_number"
        ),
        key,
    ).all()
    quizzes = connection.execute(
        text("SELECT count(*) FROM quizzes WHERE content_id = :content"), key
    ).scalar_one()
    best: dict[uuid.UUID, Decimal] = {}
    for row in rows:
        best[row.quiz_id] = max(best.get(row.quiz_id, row.score), row.score)
    passed_quizzes = {row.quiz_id for row in rows if row.passed}
    completion = round(100 * len(passed_quizzes) / max(quizzes, 1), 2)
    mastery = mastery_level(float(sum(best.values()) / len(best)))
    current, longest = streaks([bool(row.passed) for row in rows])
    scores = [float(row.score) for row in rows]
    values: dict[str, Any] = {
        **key,
        "completion": completion,
        "seconds": sum(int(row.seconds) for row in rows),
        "attempts": len(rows),
        "best": max(best.values()),
        "current": current,
        "longest": longest,
        "difficulty": difficulty,
        "mastery": mastery,
        "last": rows[-1].completed_at,
        "next": _recommend(connection, attempt, completion, mastery, difficulty),
        "trends": {
            "recent_scores": scores[-RECENT_SCORES:],
            "average": round(sum(scores) / len(scores), 2),
            "trend": trend(scores),
        },
    }
    connection.execute(
        text(
            "INSERT INTO user_progress (user_id, content_id, progress_type, completion_percentage,"
            " time_spent_seconds, attempts_count, best_score, current_streak, max_streak,"
            " difficulty_level, mastery_level, last_interaction, next_recommended_content,"
            " performance_trends) VALUES (:user, :content, :type, :completion, :seconds,"
            " :attempts, :best, :current, :longest, :difficulty, :mastery, :last, :next, :trends)"
            " ON CONFLICT (user_id, content_id, progress_type) DO UPDATE SET"
            " completion_percentage = excluded.completion_percentage,"
            " time_spent_seconds = excluded.time_spent_seconds,"
            " attempts_count = excluded.attempts_count, best_score = excluded.best_score,"
            " current_streak = excluded.current_streak, max_streak = excluded.max_streak,"
            " difficulty_level = excluded.difficulty_level,"
            " mastery_level = excluded.mastery_level,"
            " last_interaction = excluded.last_interaction,"
            " next_recommended_content = excluded.next_recommended_content,"
            " performance_trends = excluded.performance_trends"
        ).bindparams(bindparam("trends", type_=JSONB)),
        {**values, "type": PROGRESS_TYPE},
    )


def _recommend(
    connection: Connection,
    attempt: RowMapping,
    completion: float,
    mastery: str,
    difficulty: str | None,
) -> uuid.UUID | None:
    """The same content until it is passed with proficiency; then the next one up."""
    if completion < 100 or mastery in ("novice", "developing"):
        content: uuid.UUID = attempt["content_id"]
        return content
    nxt: uuid.UUID | None = connection.execute(
        text(
            "SELECT c.id FROM educational_content c JOIN educational_content here"
            " ON here.id = :content WHERE c.id <> here.id AND c.status = 'ready'"
            " AND NOT c.is_template AND c.subject = here.subject"
            " AND c.grade_level BETWEEN here.grade_level AND here.grade_level + 1"
            " AND NOT EXISTS (SELECT 1 FROM user_progress p WHERE p.user_id = :user"
            " AND p.content_id = c.id AND p.completion_percentage >= 100)"
            " ORDER BY c.grade_level,"
            " array_position(:levels, c.difficulty_level::text) < coalesce("
            "array_position(:levels, CAST(:difficulty AS text)), 1),"
            " array_position(:levels, c.difficulty_level::text), c.created_at, c.id LIMIT 1"
        ),
        {
            "content": attempt["content_id"],
            "user": attempt["user_id"],
            "levels": list(adaptive.LEVELS),
            "difficulty": difficulty,
        },
    ).scalar_one_or_none()
    return nxt


_PENDING = (
    "SELECT a.id FROM quiz_attempts a WHERE a.completed_at IS NOT NULL AND a.score IS NOT NULL"
    " AND NOT EXISTS (SELECT 1 FROM educational_analytics e WHERE e.quiz_id = a.quiz_id"
    " AND e.user_id = a.user_id AND e.metric_type = :metric"
    " AND e.context_data->>'attempt_id' = a.id::text AND e.metric_value = a.score)"
)


def pending_attempts(connection: Connection, limit: int) -> list[uuid.UUID]:
    """Completed attempts not yet recorded (or re-graded since), oldest first."""
    rows = connection.execute(
        text(f"{_PENDING} ORDER BY a.completed_at, a.id LIMIT :limit"),
        {"metric": METRIC_TYPE, "limit": limit},
    ).scalars()
    return list(rows)


def catch_up(
    engine: Engine, *, batch: int = 200, max_batches: int = 10, seconds: float = CATCH_UP_SECONDS
) -> dict[str, int]:
    """Record every pending attempt, one transaction each; safe with a twin running.

    Each attempt is locked (``FOR UPDATE SKIP LOCKED``) and checked again
    before it is recorded, so two runners never process the same attempt.
    After ``seconds`` it stops; the next run goes on.
    """
    recorded = failed = 0
    skipped: set[uuid.UUID] = set()
    deadline = time.monotonic() + seconds
    for _ in range(max_batches):
        with engine.connect() as connection:
            found = pending_attempts(connection, batch + len(skipped))
        ids = [attempt_id for attempt_id in found if attempt_id not in skipped]
        if not ids:
            break
        for attempt_id in ids:
            if time.monotonic() > deadline:
                return {"recorded": recorded, "failed": failed}
            try:
                recorded += _record_pending(engine, attempt_id)
            except Exception as exc:
                failed += 1
                skipped.add(attempt_id)
                log.warning("attempt %s not recorded: %s", attempt_id, type(exc).__name__)
                _report(engine, exc)
        if len(ids) < batch:
            break
    return {"recorded": recorded, "failed": failed}


def _record_pending(engine: Engine, attempt_id: uuid.UUID) -> int:
    with engine.begin() as connection:
        locked = connection.execute(
            text("SELECT id FROM quiz_attempts WHERE id = :id FOR UPDATE SKIP LOCKED"),
            {"id": attempt_id},
        ).first()
        if locked is None:
            return 0
        # A new statement, so a new snapshot: a twin that held the lock until
        # just now has committed, and its analytics row is visible here.
        still_pending = connection.execute(
            text(f"{_PENDING} AND a.id = :id"), {"metric": METRIC_TYPE, "id": attempt_id}
        ).first()
        if still_pending is None:
            return 0
        return int(record_attempt(connection, attempt_id))


def _report(engine: Engine, exc: Exception) -> None:
    event = ErrorEvent(
        error_type=type(exc).__name__,
        message=str(exc),
        service="toolbox.maintenance.progress",
        severity="medium",
    )
    with engine.begin() as connection:
        record_error(connection, event)
