"""Reading LMS values: numbers, times and score scales, the same way for every client.

Two flavours: ``strict_*`` raise ``ValidationFailed`` naming where the bad
value came from (for fields a client relies on), the others return None for
anything unreadable (for optional, informative fields).
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from lms.base import GradeSubmission
from models.errors import ValidationFailed


def decimal_or_none(value: Any) -> Decimal | None:
    """A finite number, or None: NaN and Infinity (which Python's ``json`` reads, and
    ``Decimal`` takes) would raise ``InvalidOperation`` in the first comparison."""
    if value is None or isinstance(value, bool):
        return None
    try:
        parsed = Decimal(str(value))
    except InvalidOperation:
        return None
    return parsed if parsed.is_finite() else None


def strict_decimal(value: Any, where: str) -> Decimal | None:
    """A number, or None when absent; anything else (booleans too) is an error."""
    if value is None or value == "":
        return None
    parsed = None if isinstance(value, bool) else decimal_or_none(value)
    if parsed is None:
        raise ValidationFailed(f"{where}: expected a number, got {value!r}")
    return parsed


def strict_bool(value: Any, where: str) -> bool:
    """A JSON boolean, false when absent; anything else (``"true"``, 1) is an error."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValidationFailed(f"{where}: expected true or false, got {value!r}")
    return value


def utc(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def iso_datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def iso_date(value: Any) -> dt.date | None:
    moment = iso_datetime(value)
    return moment.date() if moment else None


def strict_iso_datetime(value: Any, where: str) -> dt.datetime | None:
    if not value:
        return None
    parsed = iso_datetime(str(value))
    if parsed is None:
        raise ValidationFailed(f"{where}: expected an ISO 8601 time, got {value!r}")
    return utc(parsed)


def unix_time(value: Any, where: str) -> dt.datetime | None:
    """Unix seconds (Moodle, Schoology); 0 means "not set"."""
    if value in (None, "", 0, "0"):
        return None
    try:
        return dt.datetime.fromtimestamp(int(value), dt.UTC)
    except (TypeError, ValueError, OverflowError):
        raise ValidationFailed(f"{where}: expected a Unix time, got {value!r}") from None


def scaled_score(grade: GradeSubmission, lms_points: Decimal | None) -> Decimal:
    """The score on the LMS's scale when its points possible differ from ours."""
    if not lms_points or lms_points <= 0 or grade.points_possible <= 0:
        return grade.score
    if lms_points == grade.points_possible:
        return grade.score
    scaled = grade.score * lms_points / grade.points_possible
    return scaled.quantize(Decimal("0.0001"), rounding=ROUND_HALF_UP)


def plain(value: Decimal) -> str:
    """A decimal as plain digits (no exponent), as form fields want it."""
    return format(value.normalize(), "f")


def json_number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)
