"""Payload keys in refusals: a key is data, so it is shown only when it is safe to show.

A key holding a NUL is refused by the NUL check, which runs before the
schema's: the schema would name the key in its "extra input" line.  A key
with any other character that is not printable (a terminal escape, a line
break) is named by its object (``input (a key)``), never shown, and a long
one is cut short: an error stays one short line.  The same rules hold for
the Python API and for ``toolbox task submit``, which check with the same
code before anything is written.
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import Engine, text

from models.errors import ValidationFailed
from tests.integration.test_cli import toolbox
from tests.integration.test_cli_errors import one_error_line
from tests.integration.test_engine_hotpath import in_process_runner
from tests.integration.test_submission_input import (
    SECRET,
    WAYS,
    Submit,
    _submit_many,
    refused,
    task_count,
)
from workers import client

ECHO = "invalid input for agent 'echo': "
NUL_LINE = "contains a NUL character (\\u0000), which PostgreSQL cannot store"
EXTRA = "Extra inputs are not permitted"
LONG_KEY = SECRET + "k" * 5000
SHOWN_LONG_KEY = LONG_KEY[:40] + "..."

UNSHOWN_KEYS = {
    "nul": (f"{SECRET}\x00", f"input (a key): {NUL_LINE}"),
    "escape": (f"\x1b[2J{SECRET}", f"input (a key): {EXTRA}"),
    "line break": (f"{SECRET}\nsecond line", f"input (a key): {EXTRA}"),
    "long": (LONG_KEY, f"{SHOWN_LONG_KEY}: {EXTRA}"),
}


@WAYS
@pytest.mark.parametrize("name", UNSHOWN_KEYS)
def test_a_key_is_never_shown_raw(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit, name: str
) -> None:
    key, line = UNSHOWN_KEYS[name]
    payload = {"message": "x", key: "x"}
    hidden = [key] if name == "long" else [key, SECRET]
    message = refused(ValidationFailed, lambda: submit("echo", payload), *hidden)
    assert message == ECHO + _of(submit) + line
    assert task_count(engine) == 0


def _of(submit: Submit) -> str:
    """How an error line names its input: submit_many's second input is ``inputs[1]``."""
    return "inputs[1]: " if submit is _submit_many else ""


@WAYS
def test_the_nul_check_comes_first_and_cuts_long_keys_on_its_path(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    """The schema would have refused the unknown key first, naming it whole."""
    payload = {"message": "x", LONG_KEY: {"inner": "value-text\x00"}}
    message = refused(ValidationFailed, lambda: submit("echo", payload), LONG_KEY, "value-text")
    line = _of(submit) + f"input.{SHOWN_LONG_KEY}.inner: {NUL_LINE}"
    assert message == ECHO + line
    with pytest.raises(ValidationFailed) as caught:
        submit("echo", payload)
    assert caught.value.errors == [line]
    assert task_count(engine) == 0


def test_the_cli_shows_no_key_raw(engine: Engine, toolbox_env: dict[str, str]) -> None:
    for name, (key, line) in UNSHOWN_KEYS.items():
        given = json.dumps({"message": "x", key: "x"})  # a NUL travels as \u0000
        result = toolbox("task", "submit", "echo", "--input", given, env=toolbox_env)
        assert one_error_line(result) == f"error: {ECHO}{line}", name
        assert SECRET not in result.stderr or name == "long", name
        assert "\x1b" not in result.stderr and len(result.stderr) < 200, name
    assert task_count(engine) == 0


def test_a_stored_input_the_schema_refuses_at_run_time_shows_no_key_raw(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """The runner validates the stored input again (a schema may have changed since)."""
    task_id = client.submit("echo", {"message": "x"})
    stored = {"message": "x", f"\x1b[2J{SECRET}": 1, LONG_KEY: 2}
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE agent_tasks SET input_data = CAST(:data AS jsonb) WHERE id = :id"),
            {"data": json.dumps(stored), "id": task_id},
        )
    assert in_process_runner([]).execute(task_id).action == "done"
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT status, error_message, error_details FROM agent_tasks WHERE id = :id"),
            {"id": task_id},
        ).one()
    assert row.status == "failed"
    lines = row.error_message.removeprefix("invalid input: ").split("; ")
    assert sorted(lines) == sorted([f"input (a key): {EXTRA}", f"{SHOWN_LONG_KEY}: {EXTRA}"])
    assert LONG_KEY not in json.dumps(row.error_details) and "\x1b" not in row.error_message
