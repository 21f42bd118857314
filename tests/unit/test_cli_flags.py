"""Refusals in the command line's terms: schema fields renamed to the flags that fill them."""

from __future__ import annotations

import typer
from typer.core import TyperGroup

from agents.schemas import EnvironmentRequest
from models.errors import ValidationFailed
from workers.cli.flags import flag_named, in_flag_terms
from workers.cli.tasks import OPTION_FLAGS, task_app
from workers.cli.usage import Refused
from workers.cli.workflow import FIELD_FLAGS, workflow_app
from workers.submission import SubmitOptions


def _options(app: typer.Typer, command: str) -> set[str]:
    group = typer.main.get_command(app)
    assert isinstance(group, TyperGroup)
    return {name for param in group.commands[command].params for name in param.opts}


def test_every_mapped_field_and_flag_exists() -> None:
    """A renamed option or field would otherwise leave errors naming a flag nobody can type."""
    assert set(FIELD_FLAGS.values()) <= _options(workflow_app, "generate")
    assert set(FIELD_FLAGS) <= set(EnvironmentRequest.model_fields)
    assert set(OPTION_FLAGS.values()) <= _options(task_app, "submit")
    assert set(OPTION_FLAGS) <= set(SubmitOptions.__dataclass_fields__)


def test_lines_are_renamed_and_unmapped_fields_keep_their_names() -> None:
    refused = ValidationFailed(
        "invalid input for agent 'supervisor': ...",
        errors=[
            "grade_level: Input should be less than or equal to 12",
            "learning_objectives.0: String should have at least 3 characters",
            "input.topic: contains a NUL character",
            "artifacts: List should have at least 1 item",
            "input: Value error, something about the whole request",
        ],
    )
    renamed = in_flag_terms(refused, FIELD_FLAGS)
    assert isinstance(renamed, Refused)  # printed after the command: toolbox workflow generate
    assert renamed.message.split("; ") == [
        "--grade: Input should be less than or equal to 12",
        "--objective #1: String should have at least 3 characters",
        "--topic: contains a NUL character",
        "artifacts: List should have at least 1 item",
        "input: Value error, something about the whole request",
    ]


def test_one_field_refused_is_named_by_its_flag_in_its_own_message() -> None:
    status = ValidationFailed("unknown status 'x'; valid: ...", errors=["status: not a status"])
    key = ValidationFailed("idempotency_key: already used", errors=["idempotency_key: used"])
    flags = {"status": "--status", "idempotency_key": "--idempotency-key"}
    assert flag_named(status, flags).message == "--status: unknown status 'x'; valid: ..."
    assert flag_named(key, flags).message == "--idempotency-key: already used"
    unmapped = ValidationFailed("limit: too big", errors=["limit: too big"])
    assert flag_named(unmapped, flags) is unmapped


def test_a_refusal_without_lines_is_left_as_it_is() -> None:
    refused = ValidationFailed("no lines to rename")
    assert in_flag_terms(refused, FIELD_FLAGS) is refused
