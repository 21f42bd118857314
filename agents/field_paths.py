"""Where a payload is wrong, said without showing the payload: field paths in error lines.

A payload's keys are data as much as its values: a free-form object
(``game_mechanics`` of a review) or a mistyped field may hold a pupil's
name, a NUL, a terminal escape or 5,000 characters, and an error line that
repeats it verbatim leaks it, breaks the line or floods the terminal.  So
every error line that names a place in a payload (a schema's ``loc``, the
NUL check's path) is written by ``path_of``: a key is shown only when every
character of it is printable, cut to ``KEY_SHOWN_MAX`` characters; a key
that is not printable ends the path as ``(a key)`` of its object, never
shown.  Schemas name their fields in plain words, so only data is affected.

What PostgreSQL's ``jsonb`` cannot store, a NUL in a string or key and a
number that is NaN or infinite (Python's ``json`` reads and writes them;
JSON has none), is looked for before the schema runs (``storage_errors``):
the schema would otherwise name a NUL key in its "extra inputs" line, or
take NaN for a number, before the check could refuse it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError
from pydantic_core import PydanticSerializationError, to_jsonable_python

NUL = "\x00"
NUL_REFUSED = "contains a NUL character (\\u0000), which PostgreSQL cannot store"
SURROGATE_REFUSED = (
    "is not valid Unicode (a lone surrogate, such as undecodable bytes); give UTF-8 text"
)
MAX_DEPTH = 100
"""Levels of arrays and objects a payload may nest (a real one nests a handful)."""
TOO_DEEP = f"arrays or objects nested more than {MAX_DEPTH} levels deep; nest fewer"
NON_FINITE_REFUSED = "is NaN or infinite, which JSON cannot hold; give a number"
KEY_SHOWN_MAX = 40
"""Characters of a key shown in a path; a longer one is cut and ends in ``...``."""
UNSHOWN_KEY = " (a key)"
"""Follows the path of the object that holds a key which cannot be shown."""
ROOT = "input"
"""The path of the whole payload."""


def path_of(parts: Iterable[str | int], root: str = ROOT) -> str:
    """``parts`` joined with dots, each key shown safely; ``root`` when there are none."""
    shown: list[str] = []
    for part in parts:
        text = str(part)
        if not text.isprintable():  # a NUL, an escape, a line break: never shown
            return (".".join(shown) or root) + UNSHOWN_KEY
        shown.append(text if len(text) <= KEY_SHOWN_MAX else text[:KEY_SHOWN_MAX] + "...")
    return ".".join(shown) or root


def field_errors(exc: ValidationError, root: str = ROOT) -> list[str]:
    """One ``path: message`` line per error of a schema; pydantic's messages hold no input."""
    return [f"{path_of(error['loc'], root)}: {error['msg']}" for error in exc.errors()]


def storage_errors(value: Any) -> list[str]:
    """One line per place in the JSON-like ``value`` that ``jsonb`` cannot store (cheap if none)."""
    if not unstorable(value):
        return []
    return list(dict.fromkeys(_unstorable_lines(value, [ROOT])))  # two NUL keys of one object


def unencodable(text: str) -> bool:
    """Whether ``text`` holds a lone surrogate, which UTF-8 (and so PostgreSQL) cannot encode.

    Python makes them of bytes it cannot decode (``sys.argv``, ``surrogateescape``)
    and of a JSON escape such as ``"\\ud800"``.
    """
    if text.isascii():  # no encoding needed (and a constant-time answer)
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def unstorable_text(text: str) -> bool:
    """Whether PostgreSQL cannot take ``text`` at all: a NUL, or a lone surrogate."""
    return NUL in text or unencodable(text)


def unstorable(value: Any, depth: int = 0) -> bool:
    """Whether a string or key holds a NUL or a lone surrogate, a number is NaN or
    infinite, or arrays and objects nest deeper than ``MAX_DEPTH`` (no paths)."""
    if isinstance(value, str):
        return unstorable_text(value)
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        if depth >= MAX_DEPTH:
            return True
        for key, item in value.items():
            if (isinstance(key, str) and unstorable_text(key)) or unstorable(item, depth + 1):
                return True
    elif isinstance(value, list | tuple):
        if depth >= MAX_DEPTH:
            return True
        for item in value:
            if unstorable(item, depth + 1):
                return True
    return False


def _text_refusal(text: str) -> str | None:
    if NUL in text:
        return NUL_REFUSED
    return SURROGATE_REFUSED if unencodable(text) else None


def _unstorable_lines(value: Any, parts: list[str | int]) -> list[str]:
    """``path: why`` (``input.request.topic``, ``input.items.0``) of each place ``unstorable``
    finds; a key holding a NUL or a lone surrogate is named by its object's path
    (``... (a key)``)."""
    if isinstance(value, str):
        why = _text_refusal(value)
        return [] if why is None else [f"{path_of(parts)}: {why}"]
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{path_of(parts)}: {NON_FINITE_REFUSED}"]
    if isinstance(value, dict | list | tuple) and len(parts) > MAX_DEPTH:  # parts[0] is ROOT
        return [f"{ROOT}: {TOO_DEEP}"]
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            why = _text_refusal(key) if isinstance(key, str) else None
            if why is not None:
                found.append(f"{path_of([*parts, key])}: {why}")
            else:
                found.extend(_unstorable_lines(item, [*parts, key]))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(_unstorable_lines(item, [*parts, index]))
    return found


NOT_JSON = "cannot be written as JSON (a {kind}); give text, numbers, true/false, lists or objects"


def unserializable_lines(value: Any, parts: list[str | int] | None = None) -> list[str]:
    """``path: why`` of each value in a model's Python dump that JSON mode cannot write.

    Only looked for once writing failed: a value pydantic has no JSON form
    for (an ``object()``), or bytes that are not UTF-8 text, in a free-form
    (``Any``) field.
    """
    parts = [ROOT] if parts is None else parts
    if isinstance(value, dict):
        return [line for key, item in value.items() for line in
                unserializable_lines(item, [*parts, str(key)])]  # fmt: skip
    if isinstance(value, list | tuple):
        return [line for index, item in enumerate(value) for line in
                unserializable_lines(item, [*parts, index])]  # fmt: skip
    try:
        to_jsonable_python(value)
    except (PydanticSerializationError, ValueError):
        kind = (
            "bytes value that is not UTF-8 text"
            if isinstance(value, bytes)
            else f"value of type {type(value).__name__}"
        )
        return [f"{path_of(parts)}: {NOT_JSON.format(kind=kind)}"]
    return []
