"""Option values the command line checks itself, beyond what their type says.

Typer would take ``--timeout -1`` (``still queued after -1s``) and ``nan``
(which never runs out).  A parser here raises ``ValueError`` saying what it
expected and got; ``workers.cli.usage`` prints that as the README's one
``error:`` line naming the command and the option, exit status 2, like every
other usage error.
"""

from __future__ import annotations

import math
from typing import Annotated

import typer

from models.errors import quoted


def seconds(value: str | float) -> float:
    """A typer ``parser``: a positive, finite number of seconds (the default comes as a float)."""
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if not (math.isfinite(number) and number > 0):
        raise ValueError(f"expected a positive number of seconds, got {quoted(str(value))}")
    return number


Timeout = Annotated[
    float,
    typer.Option("--timeout", metavar="SECONDS", parser=seconds, help="How long --wait waits"),
]
