"""JSON text from the command line, read as JSON defines it.

Python's ``json`` also takes ``NaN``, ``Infinity`` and ``-Infinity``, which
no other JSON reader does and ``jsonb`` cannot store (so is ``1e999``, read as Infinity; an integer
longer than Python converts ends in its ``ValueError``), and lets the last of
two equal keys of an object win, silently dropping the first: a typo'd
copy-paste loses a value nobody sees go.  ``loads`` refuses both, in the
words ``json`` uses for its own errors.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

from agents.field_paths import TOO_DEEP, path_of

MAX_DIGITS = sys.get_int_max_str_digits() or 4300
"""The longest integer Python reads from text (its default limit; 0 means none)."""


class NotJson(ValueError):
    """The text is not JSON; the message says why and where it can."""


def loads(text: str) -> Any:
    """The value ``text`` holds; ``NotJson`` for what JSON does not allow."""
    try:
        return json.loads(
            text,
            parse_constant=_constant,
            parse_int=_integer,
            parse_float=_float,
            object_pairs_hook=_unique_keys,
        )
    except json.JSONDecodeError as exc:
        raise NotJson(
            f"{exc.msg.removesuffix(' at')} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # Python's parser recurses once per level
        raise NotJson(TOO_DEEP) from None


def _constant(name: str) -> Any:
    raise NotJson(f"{name} is not a JSON value (JSON has no NaN or Infinity); give a number")


def _integer(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_DIGITS:  # Python's own limit: int() raised a ValueError with a traceback
        raise NotJson(f"a number of {digits} digits is too long; give at most {MAX_DIGITS}")
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e999 read as Infinity, which jsonb cannot store
        shown = text if len(text) <= 20 else f"{text[:20]}..."
        raise NotJson(f"{shown} is beyond the range of a JSON number here (about 1.8e308)")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:  # a key is data: shown only when printable and short
            shown = path_of([key], root="")
            named = f"{shown!r}" if shown and not shown.endswith(" (a key)") else "one key"
            raise NotJson(f"{named} appears twice in one object; give each key once")
        found[key] = value
    return found
