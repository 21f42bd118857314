"""What a teacher's request (``EnvironmentRequest``) takes: typed values, printable lines."""

from __future__ import annotations

from random import Random
from typing import Any

import pytest
from pydantic import ValidationError

from agents.offline_lesson import lesson_content
from agents.offline_phrases import clip
from agents.schemas import EnvironmentRequest

BASE: dict[str, Any] = {"subject": "science", "grade_level": 6, "topic": "volcanoes"}


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"subject": "sci\x1b[31mence"}, "subject",
         "holds the control character '\\x1b' at position 4; give printable text"),
        ({"topic": "vol\x01canoes"}, "topic", "holds the control character '\\x01'"),
        ({"learning_objectives": ["Explain \x7f why"]}, "learning_objectives.0",
         "holds the control character '\\x7f'"),
        ({"grade_level": True}, "grade_level", "Input should be a valid integer"),
        ({"grade_level": "6"}, "grade_level", "Input should be a valid integer"),
        ({"max_students": 30.0}, "max_students", "Input should be a valid integer"),
        ({"adaptive": "yes"}, "adaptive", "Input should be a valid boolean"),
        ({"adaptive": 1}, "adaptive", "Input should be a valid boolean"),
    ],
)  # fmt: skip
def test_a_request_refuses_control_characters_and_look_alike_types(
    change: dict[str, Any], field: str, message: str
) -> None:
    """``--subject $'sci\\x1b[31mence'`` stored a terminal escape in the lesson's subject;
    ``grade_level=True`` made grade 1 and ``adaptive="yes"`` an adaptive lesson."""
    with pytest.raises(ValidationError) as caught:
        EnvironmentRequest.model_validate({**BASE, **change})
    (error,) = caught.value.errors()
    assert ".".join(str(part) for part in error["loc"]) == field
    assert message in error["msg"]


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ("x" * 5000, "String should have at most 300 characters"),
        ("x" * 301, "String should have at most 300 characters"),
        ("no", "String should have at least 3 characters"),
        ("  no \t", "String should have at least 3 characters"),
        ("", "String should have at least 3 characters"),
    ],
)
def test_an_objective_of_the_wrong_length_is_counted_in_characters(
    objective: str, message: str
) -> None:
    """A 5,000-character objective was refused as having "at most 300 items after
    validation, not 5000": its limits ran after its own validator, on a value
    pydantic no longer knew to be text."""
    with pytest.raises(ValidationError) as caught:
        EnvironmentRequest.model_validate(
            {**BASE, "learning_objectives": ["Explain why volcanoes erupt", objective]}
        )
    (error,) = caught.value.errors()
    assert error["loc"] == ("learning_objectives", 1)
    assert error["msg"] == message and "items" not in error["msg"]


def test_an_objective_at_its_limits_is_taken() -> None:
    objectives = ["x" * 300, "abc", " a\n\nb "]
    request = EnvironmentRequest.model_validate({**BASE, "learning_objectives": objectives})
    assert request.learning_objectives == ["x" * 300, "abc", "a b"]


def test_tabs_and_line_breaks_in_a_line_become_one_space() -> None:
    request = EnvironmentRequest.model_validate(
        {**BASE, "topic": "volcanoes\tand\r\nlava", "learning_objectives": ["Explain\nwhy"]}
    )
    assert request.topic == "volcanoes and lava"
    assert request.learning_objectives == ["Explain why"]


def test_a_long_topic_of_emoji_is_never_cut_inside_one() -> None:
    """50 x a scientist emoji (woman, ZWJ, microscope) as the topic: the lesson title
    was cut after a bare U+200D, the start of an emoji without its end."""
    scientist = "\U0001f469\u200d\U0001f52c"
    request = EnvironmentRequest.model_validate({**BASE, "topic": scientist * 50})
    content = lesson_content(request, Random(7))
    titles = [content.title, *(o.title for o in content.objectives)]
    for title in titles + [s.title for s in content.sections]:
        assert not title.endswith("\u200d"), title
        assert title.count("\u200d") == title.count(scientist), "every joiner inside an emoji"
    assert clip("ab\u0301cd", 3) == "ab\u0301"  # an accent stays with its letter
    assert clip("ab\u0301cd", 2) == "a"
    assert clip("\u0301" * 5, 2) == "\u0301" * 2  # nothing but joiners: cut where asked
