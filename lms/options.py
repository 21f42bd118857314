"""A platform's options (``ConnectionConfig.options``), read strictly and named when refused.

``--option KEY=VALUE`` stores text, ``--options-json`` any JSON, and services
pass what they like: each reader takes the spellings a user may mean (``"50"``
for 50, one space-separated string of scopes as OAuth 2 writes them) and
refuses anything else with ``ConfigurationError`` naming the option (``OneRoster
options.page_size must be a whole number from 1, got 'abc'``).  A client reads
its options when it is built, which ``lms add`` and ``lms update`` do before
they write anything, so a bad value is one line there, never a traceback at
the first sync or a scope sent one character at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from models.errors import ConfigurationError

_SHOWN = 40


def text(options: Mapping[str, Any], key: str, where: str, *, numbers: bool = False) -> str | None:
    """A non-empty string (or, with ``numbers``, a whole number as an id); None when unset."""
    value = options.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    kind = "a string or a whole number" if numbers else "a string"
    raise _refused(where, key, kind, value)


def whole(
    options: Mapping[str, Any],
    key: str,
    where: str,
    *,
    default: int,
    minimum: int,
    maximum: int | None = None,
) -> int:
    """A whole number of at least ``minimum`` (and, given one, at most ``maximum``), as a
    JSON number or as digits."""
    value = options.get(key)
    if value is None or value == "":
        return default
    number: int | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value.strip())
    if number is None or number < minimum or (maximum is not None and number > maximum):
        span = f"from {minimum}" if maximum is None else f"from {minimum} to {maximum}"
        raise _refused(where, key, f"a whole number {span}", value)
    return number


def choice(options: Mapping[str, Any], key: str, where: str, *, choices: Sequence[str]) -> str:
    """One of ``choices`` (the first is the default when unset)."""
    value = options.get(key)
    if value is None or value == "":
        return choices[0]
    if not isinstance(value, str) or value not in choices:
        raise _refused(where, key, "one of " + ", ".join(choices), value)
    return value


def scopes(
    options: Mapping[str, Any], key: str, where: str, *, default: tuple[str, ...]
) -> tuple[str, ...]:
    """OAuth 2 scopes: a list of strings, or one string of them separated by spaces."""
    value = options.get(key)
    if value is None or value == "" or value == []:
        return default
    if isinstance(value, str):
        return tuple(value.split()) or default
    if isinstance(value, list) and all(
        isinstance(item, str) and item and not any(char.isspace() for char in item)
        for item in value
    ):
        return tuple(value)
    raise _refused(where, key, "a list of scopes or one string of them separated by spaces", value)


def _refused(where: str, key: str, expected: str, value: Any) -> ConfigurationError:
    shown = repr(value)
    shown = shown if len(shown) <= _SHOWN else shown[:_SHOWN] + "..."
    return ConfigurationError(f"{where} options.{key} must be {expected}, got {shown}")
