"""What a teacher's request (``EnvironmentRequest``) takes: typed values, printable lines."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

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


def test_tabs_and_line_breaks_in_a_line_become_one_space() -> None:
    request = EnvironmentRequest.model_validate(
        {**BASE, "topic": "volcanoes\tand\r\nlava", "learning_objectives": ["Explain\nwhy"]}
    )
    assert request.topic == "volcanoes and lava"
    assert request.learning_objectives == ["Explain why"]
