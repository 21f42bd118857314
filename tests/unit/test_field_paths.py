"""Field paths in error lines: keys shown only when printable, and cut short."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict

from agents.base import PhaseContext
from agents.field_paths import path_of, storage_errors, unserializable_lines
from agents.kinds.echo import EchoInput
from agents.phases import payload_as
from models.errors import ValidationFailed


@pytest.mark.parametrize(
    ("parts", "shown"),
    [
        ((), "input"),
        (("request", "learning_objectives", 1), "request.learning_objectives.1"),
        (("caf\u00e9", "\u6f22\u5b57 with spaces"), "caf\u00e9.\u6f22\u5b57 with spaces"),
        (("x" * 41,), "x" * 40 + "..."),
        (("a\x00b",), "input (a key)"),
        (("content", "game_mechanics", "\x1b[2J", "levels"), "content.game_mechanics (a key)"),
        (("bidi\u202eoverride",), "input (a key)"),
        (("line\u2028separator", 0), "input (a key)"),
    ],
)
def test_a_key_is_shown_only_when_printable_and_short(parts: tuple[str | int], shown: str) -> None:
    assert path_of(parts) == shown


def test_two_nul_keys_of_one_object_are_one_line() -> None:
    assert storage_errors({"a\x00": 1, "b\x00": 2, "ok": ["\x00"]}) == [
        "input (a key): contains a NUL character (\\u0000), which PostgreSQL cannot store",
        "input.ok.0: contains a NUL character (\\u0000), which PostgreSQL cannot store",
    ]
    assert storage_errors({1: "fine", "nested": {2: ("also fine",)}}) == []


def test_a_number_json_cannot_hold_is_named_by_its_path() -> None:
    """Python's json reads NaN and Infinity; jsonb refused them after the schema passed them."""
    nan, inf = float("nan"), float("inf")
    assert storage_errors({"scores": [1.5, nan], "deep": {"x": -inf}, "n": 10**400 // 10**390}) == [
        "input.scores.1: is NaN or infinite, which JSON cannot hold; give a number",
        "input.deep.x: is NaN or infinite, which JSON cannot hold; give a number",
    ]


def test_a_lone_surrogate_in_a_string_or_a_key_is_named_by_its_path() -> None:
    """A JSON escape such as "\\ud800" reads as one; PostgreSQL refused the value (quoting
    the payload in its error) and JSON mode turned a key's into U+FFFD without a word."""
    refusal = "is not valid Unicode (a lone surrogate, such as undecodable bytes); give UTF-8 text"
    assert storage_errors(
        {"m": {"tok\udc80en": "x", "t": ["S-\ud800"], "ok": "caf\u00e9 \U0001f30b"}}
    ) == [
        f"input.m (a key): {refusal}",
        f"input.m.t.0: {refusal}",
    ]
    assert (
        storage_errors({"pair": "\ud83c\udf0b".encode("utf-16", "surrogatepass").decode("utf-16")})
        == []
    )


def test_a_value_json_cannot_write_is_named_by_its_path() -> None:
    assert unserializable_lines({"game": {"a": b"\xff", "b": b"fine", "c": [object()]}}) == [
        "input.game.a: cannot be written as JSON (a bytes value that is not UTF-8 text);"
        " give text, numbers, true/false, lists or objects",
        "input.game.c.0: cannot be written as JSON (a value of type object);"
        " give text, numbers, true/false, lists or objects",
    ]
    assert unserializable_lines({"when": [1, "x", None, 2.5]}) == []


class Loose(BaseModel):
    """A payload kept with whatever keys it came with."""

    model_config = ConfigDict(extra="allow")


def test_a_phase_reading_its_payload_as_a_schema_shows_no_key_raw() -> None:
    loose = Loose.model_validate({"message": "x", "\x1b[2Jsecret": 1})
    ctx = PhaseContext(task_id="t", workflow_id="w", agent_type="echo", payload=loose, previous={})
    with pytest.raises(ValidationFailed) as caught:
        payload_as(ctx, EchoInput)
    assert caught.value.errors == ["input (a key): Extra inputs are not permitted"]
