"""Grading an attempt's answers and replaying an adaptive quiz's difficulty rules.

``quiz_attempts.answers`` maps a question id to the student's answer: either
``{"correct": true}`` (graded by the client), ``{"option_ids": [...]}``,
``{"answer": "text" | ["text", ...]}`` or the bare answer; an optional
``"order"`` says when it was answered (default: the question's place).
The replay follows the rules of the Luau module the script agent generates:
a streak of right (or wrong) answers reaching a rule's threshold moves the
level one step between easy, medium and hard, and that streak starts again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agents.schemas import DifficultyProgression

LEVELS = ("easy", "medium", "hard")


@dataclass(frozen=True)
class QuestionKey:
    id: uuid.UUID
    order_index: int
    correct_answer: str | None
    correct_options: frozenset[str]
    """Ids of the correct options."""
    correct_texts: frozenset[str]
    """Normalised texts of the correct options."""


def _norm(value: object) -> str:
    return " ".join(str(value).split()).casefold()


def is_correct(question: QuestionKey, entry: Any) -> bool | None:
    """Whether ``entry`` answers ``question`` right; None when it was not answered."""
    value = entry
    if isinstance(entry, dict):
        if isinstance(entry.get("correct"), bool):
            return bool(entry["correct"])
        if isinstance(entry.get("option_ids"), list) and question.correct_options:
            return {str(item) for item in entry["option_ids"]} == set(question.correct_options)
        value = entry.get("answer")
    if value is None or value == "" or value == []:
        return None
    given = {_norm(item) for item in value} if isinstance(value, list) else {_norm(value)}
    if question.correct_texts:
        return given == set(question.correct_texts)
    if question.correct_answer is None:
        return None
    return given == {_norm(question.correct_answer)}


def outcomes(questions: list[QuestionKey], answers: dict[str, Any] | None) -> list[bool]:
    """Right/wrong for every answered question, in the order they were answered."""
    graded: list[tuple[float, int, bool]] = []
    for question in questions:
        entry = (answers or {}).get(str(question.id))
        correct = is_correct(question, entry)
        if correct is None:
            continue
        order = entry.get("order") if isinstance(entry, dict) else None
        position = float(order) if isinstance(order, int | float) else float(question.order_index)
        graded.append((position, question.order_index, correct))
    return [correct for _, _, correct in sorted(graded)]


def parse_progression(raw: dict[str, Any] | None) -> DifficultyProgression | None:
    if not raw:
        return None
    try:
        return DifficultyProgression.model_validate(raw)
    except ValidationError:
        return None


def replay(progression: DifficultyProgression, answered: list[bool]) -> dict[str, Any]:
    """The adjustments the rules make over ``answered`` (True = right), in order."""
    level = LEVELS.index(progression.start)
    streaks = {"correct_streak": 0, "incorrect_streak": 0}
    adjustments: list[dict[str, Any]] = []
    for position, correct in enumerate(answered, start=1):
        grown = "correct_streak" if correct else "incorrect_streak"
        streaks = {"correct_streak": 0, "incorrect_streak": 0, grown: streaks[grown] + 1}
        for rule in progression.rules:
            if streaks[rule.trigger] < rule.threshold:
                continue
            moved = max(0, min(len(LEVELS) - 1, level + (1 if rule.action == "harder" else -1)))
            if moved != level:
                adjustments.append(
                    {
                        "after_answer": position,
                        "from": LEVELS[level],
                        "to": LEVELS[moved],
                        "rule": f"{rule.trigger}>={rule.threshold}:{rule.action}",
                    }
                )
                level = moved
                streaks[rule.trigger] = 0
            break
    return {
        "start": progression.start,
        "final": LEVELS[level],
        "answered": len(answered),
        "correct": sum(answered),
        "adjustments": adjustments,
    }
