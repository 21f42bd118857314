"""The payload of ``toolbox task submit``: its ``--input``, checked before any server is asked.

``--input`` takes JSON text, ``-`` to read it from stdin or ``@FILE`` to read
a file, because quoting JSON for a shell is the first thing a new user
fights.  A file that cannot be read, an empty stdin or text that is not a
JSON object is a ``Refused`` naming the option as typed (``--input @x.json:
cannot read x.json (...)``), printed after the command like every usage
error.  Without ``--input`` the payload is ``{}``, which is all an agent
such as ``echo`` needs.  An agent that refuses it gets the schema's error
lines and one more, saying that no ``--input`` was given and which fields
the agent needs: a new user who left it out should not have to guess.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from pydantic import BaseModel

from agents.registry import get_kind
from models.errors import AgentUnavailable, ValidationFailed
from workers.cli import json_text
from workers.cli.usage import refused
from workers.submission import validate_input

OPTION = "--input"
STDIN = "-"
FILE_PREFIX = "@"
TERMINAL_HINT = (
    f"{OPTION} {STDIN}: reading the JSON from the terminal; type or paste it, "
    "then press Ctrl-D on a line of its own"
)
"""Said when ``-`` reads a terminal, which would otherwise wait without a word."""
INPUT_HELP = (
    "Input payload: JSON text, - to read it from stdin, or @FILE to read a file. "
    "Left out: {}, enough for echo; an agent that needs more says which fields"
)


def read_input(value: str | None) -> dict[str, Any]:
    """The payload ``--input`` gives (JSON text, ``-``, ``@FILE``), or ``{}`` when left out.

    Neither ``-`` nor a leading ``@`` is valid JSON, so no JSON text is mistaken for them.
    """
    if value is None:
        return {}
    if value == STDIN:
        source = f"{OPTION} {STDIN} (stdin)"
        if sys.stdin.isatty():
            typer.echo(TERMINAL_HINT, err=True)
        text = _text(source, sys.stdin.buffer.read())
    elif value.startswith(FILE_PREFIX):
        source = f"{OPTION} {value}"
        text = _text(source, _read_file(source, value.removeprefix(FILE_PREFIX)))
    else:
        source, text = OPTION, value
    try:
        payload = json_text.loads(text)
    except json_text.NotJson as exc:
        raise refused(source, f"not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise refused(source, "must be a JSON object")
    return payload


def _read_file(source: str, name: str) -> bytes:
    if not name:
        raise refused(source, f"name the file after the @ ({OPTION} @FILE)")
    try:
        return Path(name).expanduser().read_bytes()
    except OSError as exc:
        reason = (exc.strerror or type(exc).__name__).lower()
        raise refused(source, f"cannot read {name} ({reason})") from None


def _text(source: str, data: bytes) -> str:
    """UTF-8, with or without the byte-order mark some editors write; not empty."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise refused(source, "not UTF-8 text") from None
    if not text.strip():
        raise refused(source, "empty")
    return text


def check_input(agent: str, payload: dict[str, Any], *, given: bool) -> None:
    """``ValidationFailed`` if the agent kind refuses ``payload``; with a hint if not ``given``.

    An agent type that is no kind of this code is left to the submit, which
    names the agents the database knows.
    """
    try:
        validate_input(agent, payload)
    except AgentUnavailable:
        return
    except ValidationFailed as exc:
        if given:
            raise
        needs = needed_fields(get_kind(agent).input_schema)
        hint = f"no {OPTION} given" + (f"; {agent} needs: {', '.join(needs)}" if needs else "")
        raise ValidationFailed(f"{exc.message}; {hint}", errors=[*exc.errors, hint]) from None


def needed_fields(schema: type[BaseModel], prefix: str = "") -> list[str]:
    """The required fields of ``schema`` as paths, down into required nested objects.

    ``request.subject`` says where a field goes in the JSON, as the error lines do.
    """
    found: list[str] = []
    for name, field in schema.model_fields.items():
        if not field.is_required():
            continue
        path = f"{prefix}{field.alias or name}"
        inner = field.annotation
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            found.extend(needed_fields(inner, f"{path}.") or [path])
        else:
            found.append(path)
    return found
