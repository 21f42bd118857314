"""Option values the command line checks itself (the refusals: tests/integration/test_cli_input)."""

from __future__ import annotations

import pytest

from models.errors import ValidationFailed
from workers.cli.options import seconds


@pytest.mark.parametrize(("value", "expected"), [("0.5", 0.5), ("10", 10.0), ("1e3", 1000.0),
                                                 (300.0, 300.0)])  # fmt: skip
def test_a_positive_number_of_seconds_is_taken(value: str | float, expected: float) -> None:
    assert seconds("--timeout")(value) == expected


@pytest.mark.parametrize("value", ["-0.1", "0", "-inf", "1e999", "NaN", "", " ", "5s"])
def test_anything_else_is_refused_naming_the_option(value: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        seconds("--every")(value)
    assert refused.value.message == (
        f"--every: expected a positive number of seconds, got {value!r}"
    )
