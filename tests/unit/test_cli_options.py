"""Option values the command line checks itself (the refusals: tests/integration/test_cli_input).

A parser's ``ValueError`` becomes the line naming the command and the option
(``workers.cli.usage``).
"""

from __future__ import annotations

import pytest

from workers.cli.options import seconds


@pytest.mark.parametrize(("value", "expected"), [("0.5", 0.5), ("10", 10.0), ("1e3", 1000.0),
                                                 (300.0, 300.0)])  # fmt: skip
def test_a_positive_number_of_seconds_is_taken(value: str | float, expected: float) -> None:
    assert seconds(value) == expected


@pytest.mark.parametrize("value", ["-0.1", "0", "-inf", "1e999", "NaN", "", " ", "5s"])
def test_anything_else_is_refused_saying_what_was_given(value: str) -> None:
    with pytest.raises(ValueError) as refused:
        seconds(value)
    assert str(refused.value) == f"expected a positive number of seconds, got {value!r}"
