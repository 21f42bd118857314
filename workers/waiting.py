"""The checks of ``client.wait`` and ``workflows.wait`` on how long to wait and how often to look.

A NaN ``timeout`` never compared past its deadline (the wait never ended),
a text one raised a raw ``TypeError``, a negative ``poll`` a ``ValueError``
from ``time.sleep``: each is refused here, by name, before any query.
"""

from __future__ import annotations

import math

from models.errors import ValidationFailed, shown


def check_wait(timeout: object, poll: object) -> tuple[float, float]:
    """``(timeout, poll)`` as floats, or ``ValidationFailed`` unless ``timeout`` is 0 or more
    seconds (``math.inf``, or an integer past a float's range: no limit) and ``poll`` a finite
    number of seconds above 0."""
    errors = []
    if not _number(timeout) or not timeout >= 0:  # type: ignore[operator]  # NaN is not >= 0
        errors.append(f"timeout: must be a number of seconds, 0 or more, got {shown(timeout)}")
    if not _number(poll) or not 0 < poll < math.inf:  # type: ignore[operator]
        errors.append(f"poll: must be a number of seconds above 0, got {shown(poll)}")
    if errors:
        raise ValidationFailed("; ".join(errors), errors=errors)
    try:
        seconds = float(timeout) + 0.0  # type: ignore[arg-type]  # + 0.0: -0.0 reads as 0
    except OverflowError:
        seconds = math.inf
    try:
        every = float(poll)  # type: ignore[arg-type]
    except OverflowError:
        problem = f"poll: must be a number of seconds above 0, got {shown(poll)}"
        raise ValidationFailed(problem, errors=[problem]) from None
    return seconds, every


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
