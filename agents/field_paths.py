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

A NUL, which PostgreSQL's ``jsonb`` refuses, is looked for before the
schema runs (``nul_errors``): the schema would otherwise name a NUL key
in its "extra inputs" line before the NUL check could refuse it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import ValidationError

NUL = "\x00"
NUL_REFUSED = "contains a NUL character (\\u0000), which PostgreSQL cannot store"
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


def nul_errors(value: Any) -> list[str]:
    """One line per string or key of the JSON-like ``value`` that holds a NUL (cheap if none)."""
    if not has_nul(value):
        return []
    paths = dict.fromkeys(_nul_paths(value, [ROOT]))  # two NUL keys of one object: one line
    return [f"{path}: {NUL_REFUSED}" for path in paths]


def has_nul(value: Any) -> bool:
    """Whether a string or key anywhere in the JSON-like value holds a NUL (no paths)."""
    if isinstance(value, str):
        return NUL in value
    if isinstance(value, dict):
        for key, item in value.items():
            if (isinstance(key, str) and NUL in key) or has_nul(item):
                return True
    elif isinstance(value, list | tuple):
        for item in value:
            if has_nul(item):
                return True
    return False


def _nul_paths(value: Any, parts: list[str | int]) -> list[str]:
    """Paths (``input.request.topic``, ``input.items.0``) of the strings holding a NUL.

    A key holding one is named by its object's path (``... (a key)``).
    """
    if isinstance(value, str):
        return [path_of(parts)] if NUL in value else []
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and NUL in key:
                found.append(path_of([*parts, key]))
            else:
                found.extend(_nul_paths(item, [*parts, key]))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found.extend(_nul_paths(item, [*parts, index]))
    return found
