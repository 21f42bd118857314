"""The payload of ``toolbox task submit``: its ``--input``, checked before any server is asked.

Without ``--input`` the payload is ``{}``, which is all an agent such as
``echo`` needs.  An agent that refuses it gets the schema's error lines and
one more, saying that no ``--input`` was given and which fields the agent
needs: a new user who left it out should not have to guess.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from agents.registry import get_kind
from models.errors import AgentUnavailable, ValidationFailed
from workers.submission import validate_input

OPTION = "--input"


def read_input(value: str | None) -> dict[str, Any]:
    """The payload ``--input`` gives: JSON text, or ``{}`` when it was left out."""
    if value is None:
        return {}
    try:
        payload = json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValidationFailed(f"{OPTION} is not valid JSON: {exc.msg} at {exc.pos}") from None
    if not isinstance(payload, dict):
        raise ValidationFailed(f"{OPTION} must be a JSON object")
    return payload


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
