"""Option values the command line checks itself, so a refusal is one line naming the option.

Click would take ``--timeout -1`` (``still queued after -1s``) and ``nan``
(which never runs out), and words its own refusals as a boxed usage message.
A parser here raises ``ValidationFailed`` instead, which ``main()`` prints as
the README's ``error: ...`` line with exit status 2, like every other refusal.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated

import typer

from models.errors import ValidationFailed


def seconds(option: str) -> Callable[[str | float], float]:
    """A typer ``parser`` for ``option``: a positive, finite number of seconds."""

    def parse(value: str | float) -> float:  # the default comes in as a float
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not (math.isfinite(number) and number > 0):
            raise ValidationFailed(
                f"{option}: expected a positive number of seconds, got {str(value)!r}"
            )
        return number

    return parse


Timeout = Annotated[
    float,
    typer.Option(
        "--timeout", metavar="SECONDS", parser=seconds("--timeout"), help="How long --wait waits"
    ),
]
