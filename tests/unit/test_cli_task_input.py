"""What ``toolbox task submit`` says an agent needs when ``--input`` was left out."""

from __future__ import annotations

from pydantic import BaseModel

from agents.kinds.echo import EchoInput
from agents.schemas import ContentInput, ReviewInput
from workers.cli.task_input import needed_fields


class Settings(BaseModel):
    colour: str = "red"


class Nested(BaseModel):
    name: str
    settings: Settings
    extra: int = 0


def test_required_fields_are_listed_as_paths_into_required_objects() -> None:
    request = ["request.subject", "request.grade_level", "request.topic"]
    assert needed_fields(ContentInput) == request
    assert needed_fields(ReviewInput) == request  # its optional artifacts are not needed


def test_an_object_without_required_fields_is_named_itself() -> None:
    assert needed_fields(Nested) == ["name", "settings"]
    assert needed_fields(EchoInput) == []
