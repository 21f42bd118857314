"""A refusal in the terms of the command line: the flags a user typed, not schema fields.

A command that builds a request from flags checks it with the schema the
Python API uses, whose ``ValidationFailed`` lines name fields
(``grade_level: ...``, ``learning_objectives.1: ...``).  The user typed
``--grade`` and a second ``--objective``, so each line is renamed for the
command line; a field no flag fills keeps its name, and the Python API's
own wording (``pass None for none``) becomes the command line's.  The
Python API keeps naming fields: services send those.  Renamed, a refusal is
a ``Refused``, which the command line prints after the command as typed
(``error: toolbox workflow generate: --grade: ...``).
"""

from __future__ import annotations

from collections.abc import Mapping

from agents.field_paths import ROOT
from models.errors import ValidationFailed
from workers.cli.usage import Refused, refused
from workers.submission import NONE_HINT

PAYLOAD_ROOT = ROOT
"""The first part of a path that starts at the payload (the NUL check's), dropped."""
WORDING = {NONE_HINT: "; leave the option out for none"}
"""The Python API's words in a refusal, and the command line's for the same thing."""


def in_flag_terms(exc: ValidationFailed, flags: Mapping[str, str]) -> Refused | ValidationFailed:
    """Each line of ``exc``, every field in ``flags`` (field name to flag) named by its flag.

    The Python API's summary (``invalid options:``) is left out: the lines
    name the flags.  An error without lines has nothing to rename and comes
    back as it is.
    """
    if not exc.errors:
        return exc
    return Refused("; ".join(_rename(line, flags) for line in exc.errors))


def flag_named(exc: ValidationFailed, flags: Mapping[str, str]) -> Refused | ValidationFailed:
    """The refusal of the one field ``exc`` names, in its own message, by that field's flag.

    For a refusal whose message says more than its error lines
    (``IdempotencyConflict`` names the task that holds the key, an unknown
    status lists the valid ones).  The field is the first error line's; a
    message that starts with it has it renamed, any other is prefixed with
    the flag.  A field no flag fills: ``exc`` as it is.
    """
    field = exc.errors[0].partition(": ")[0] if exc.errors else ""
    flag = flags.get(field)
    if flag is None:
        return exc
    if exc.message.startswith(f"{field}: "):
        return Refused(_rename(exc.message, flags))
    return refused(flag, exc.message)


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
