"""A refusal in the terms of the command line: the flags a user typed, not schema fields.

(An LMS client's refusal is free text naming ``options.user_id`` or
``credentials.client_id``; ``flags_named`` words it for ``lms add`` and
``lms update``, at the end of this module.)

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

import contextlib
import re
from collections.abc import Iterator, Mapping

from agents.field_paths import ROOT
from models.errors import ConfigurationError, ValidationFailed
from workers.cli.failures import fail
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


_FIELD_FLAGS = {
    "credentials.client_id": "--client-id",
    "credentials.client_secret": "--client-secret",
    "credentials.api_key": "--api-key",
    "credentials.refresh_token": "--refresh-token",
    "credentials.private_key_pem": "--private-key-file",
    "token_endpoint": "--token-endpoint",
}
_FIELD = re.compile(r"(?<![\w.-])(" + "|".join(map(re.escape, _FIELD_FLAGS)) + r")\b")
_OPTION = re.compile(r"(?<![\w.-])options\.(?!contexts\b)(\w+)\b(?![\[.])")
"""A whole option given as text (``options.user_id``); not LTI's ``contexts`` nor a place
inside one (``options.contexts[0].id``), which only ``--options-json`` gives."""


def in_lms_flag_terms(message: str) -> str:
    """A client's refusal in the words of the command line: ``Schoology needs --option
    user_id=... (the API user's uid)``, not the ``options.user_id`` of the Python API."""
    message = _FIELD.sub(lambda found: _FIELD_FLAGS[found[1]], message)
    return _OPTION.sub(lambda found: f"--option {found[1]}=...", message)


@contextlib.contextmanager
def flags_named() -> Iterator[None]:
    """A setting the platform's client refuses, named by its flag (exit status 2)."""
    try:
        yield
    except (ConfigurationError, ValidationFailed) as exc:
        fail(in_lms_flag_terms(exc.message))
