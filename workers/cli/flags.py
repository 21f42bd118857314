"""A refusal in the terms of the command line: the flags a user typed, not schema fields.

A command that builds a request from flags checks it with the schema the
Python API uses, whose ``ValidationFailed`` lines name fields
(``grade_level: ...``, ``learning_objectives.1: ...``).  The user typed
``--grade`` and a second ``--objective``, so each line is renamed for the
command line; a field no flag fills keeps its name, and the Python API's
own wording (``pass None for none``) becomes the command line's.  The
Python API keeps naming fields: services send those.
"""

from __future__ import annotations

from collections.abc import Mapping

from agents.field_paths import ROOT
from models.errors import ValidationFailed
from workers.submission import NONE_HINT

PAYLOAD_ROOT = ROOT
"""The first part of a path that starts at the payload (the NUL check's), dropped."""
WORDING = {NONE_HINT: "; leave the option out for none"}
"""The Python API's words in a refusal, and the command line's for the same thing."""


def in_flag_terms(
    exc: ValidationFailed, flags: Mapping[str, str], *, what: str
) -> ValidationFailed:
    """``exc`` with every field in ``flags`` (field name to flag) named by its flag.

    ``what`` starts the message (``invalid workflow request``).  An error
    without lines has nothing to rename and comes back as it is.
    """
    if not exc.errors:
        return exc
    lines = [_rename(line, flags) for line in exc.errors]
    return ValidationFailed(f"{what}: " + "; ".join(lines), errors=lines)


def flag_named(exc: ValidationFailed, flags: Mapping[str, str]) -> ValidationFailed:
    """``exc`` (of its own class) with the field its message starts with named by its flag.

    For a refusal of one field whose message says more than its error
    lines (``IdempotencyConflict`` names the task that holds the key).
    """
    lines = [_rename(line, flags) for line in exc.errors]
    return type(exc)(_rename(exc.message, flags), errors=lines)


def _rename(line: str, flags: Mapping[str, str]) -> str:
    path, separator, message = line.partition(": ")
    parts = path.split(".")
    if parts[0] == PAYLOAD_ROOT and len(parts) > 1:
        parts = parts[1:]
    flag = flags.get(parts[0])
    if not separator or flag is None:
        return line
    rest = parts[1:]
    if rest and rest[0].isdigit():  # the n-th use of a repeatable flag, counted from one
        flag = f"{flag} #{int(rest[0]) + 1}"
        rest = rest[1:]
    for python, words in WORDING.items():
        message = message.replace(python, words)
    return ".".join([flag, *rest]) + separator + message
