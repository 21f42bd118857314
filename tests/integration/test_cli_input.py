"""What a new user types first: ``workflow generate`` flags, ``task submit --input``.

Every check runs the real ``toolbox`` command against the test servers.
"""

from __future__ import annotations

import os
import pty
import select
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from tests.integration.test_cli import TOOLBOX, toolbox
from tests.integration.test_cli_errors import CLOSED_PORT_URL, one_error_line
from workers import client


def submit(*args: str, env: dict[str, str], stdin: str = "") -> subprocess.CompletedProcess[str]:
    """``toolbox task submit ...`` with ``stdin`` as its standard input."""
    return subprocess.run(
        [TOOLBOX, "task", "submit", *args], env={**os.environ, **env}, input=stdin,
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def stored_input(engine: Engine, result: subprocess.CompletedProcess[str]) -> Any:
    """The ``input_data`` of the task whose id the submit printed."""
    assert result.returncode == 0, result.stderr
    task_id = uuid.UUID(result.stdout.strip())
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT input_data FROM agent_tasks WHERE id = :id"), {"id": task_id}
        ).scalar_one()


def task_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM agent_tasks")).scalar_one())


# workflow generate ---------------------------------------------------------------------


def test_workflow_generate_names_the_flags_the_user_typed(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    result = toolbox(
        "workflow", "generate", "--subject", "science", "--grade", "13", "--topic", "v",
        "--objective", "Explain why volcanoes erupt", "--objective", "no", "--duration", "2",
        "--students", "500", "--accessibility", "telepathy", "--language", "not a tag",
        env=toolbox_env,
    )  # fmt: skip
    line = one_error_line(result)
    assert line.startswith("error: toolbox workflow generate: --grade: "), line
    for flag in ("--grade", "--topic", "--objective #2", "--duration", "--students",
                 "--accessibility #1", "--language"):  # fmt: skip
        assert f"; {flag}: " in line or f": {flag}: " in line, (flag, line)
    assert "--grade: Input should be less than or equal to 12" in line
    for field in ("grade_level", "learning_objectives", "duration_minutes", "max_students"):
        assert field not in line, (field, line)
    assert "--subject" not in line and "--objective #1" not in line  # those were fine
    assert task_count(engine) == 0


# task submit without --input -------------------------------------------------------------


def test_task_submit_without_input_says_so_and_lists_what_the_agent_needs(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    line = one_error_line(submit("content", env=toolbox_env))
    assert line == (
        "error: invalid input for agent 'content': request: Field required; no --input given; "
        "content needs: request.subject, request.grade_level, request.topic"
    )
    given = one_error_line(submit("content", "--input", "{}", env=toolbox_env))
    assert given == "error: invalid input for agent 'content': request: Field required"
    assert task_count(engine) == 0
    # an agent whose input schema takes an empty object still gets one
    assert stored_input(engine, submit("echo", env=toolbox_env))["message"] == ""


# task submit --input - and --input @FILE --------------------------------------------------


def test_task_submit_reads_the_input_from_stdin(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    result = submit("echo", "--input", "-", env=toolbox_env, stdin='{"message": "it\'s piped"}\n')
    assert stored_input(engine, result)["message"] == "it's piped"


def test_task_submit_reading_a_terminal_says_how_to_end_the_input(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """``--input -`` typed at a terminal waited for the JSON without a word, looking hung."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [TOOLBOX, "task", "submit", "echo", "--input", "-"], env={**os.environ, **toolbox_env},
        stdin=terminal, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(terminal)
    try:
        assert process.stderr is not None
        ready, _, _ = select.select([process.stderr], [], [], 30)
        assert ready, "no line on stderr while the command waits for the terminal"
        hint = process.stderr.readline().decode()
        assert "Ctrl-D" in hint and "--input -" in hint, hint
        os.write(controller, b'{"message": "typed"}\n\x04')
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        os.close(controller)
    assert process.returncode == 0, err
    result = subprocess.CompletedProcess(process.args, 0, out.decode(), err.decode())
    assert stored_input(engine, result)["message"] == "typed"


def test_task_submit_reads_the_input_from_a_file(
    engine: Engine, toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    path = tmp_path / "input.json"  # with a byte-order mark, as some editors write
    path.write_text('{"message": "from a \\"file\\""}', encoding="utf-8-sig")
    result = submit("echo", "--input", f"@{path}", env=toolbox_env)
    assert stored_input(engine, result)["message"] == 'from a "file"'


def test_unreadable_or_bad_input_is_one_line_naming_the_command_and_option(
    engine: Engine, toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    def refusal(option: str, stdin: str = "") -> str:
        return one_error_line(submit("echo", "--input", option, env=toolbox_env, stdin=stdin))

    missing = tmp_path / "missing.json"
    assert refusal(f"@{missing}") == (
        f"error: toolbox task submit: --input @{missing}: cannot read {missing}"
        " (no such file or directory)"
    )
    assert refusal("@") == (
        "error: toolbox task submit: --input @: name the file after the @ (--input @FILE)"
    )
    files = {
        "bad.json": (
            b'{"message":\n  "hi" "there"}',
            "not valid JSON: Expecting ',' delimiter at line 2 column 8",
        ),
        "latin1.json": ('{"message": "caf\u00e9"}'.encode("latin-1"), "not UTF-8 text"),
        "list.json": (b"[1, 2]", "must be a JSON object"),
        "blank.json": (b"\n", "empty"),
    }
    for name, (data, problem) in files.items():
        path = tmp_path / name
        path.write_bytes(data)
        assert refusal(f"@{path}") == f"error: toolbox task submit: --input @{path}: {problem}"
    stdin = {
        "{nope": "not valid JSON: Expecting property name enclosed in double quotes at line 1 "
        "column 2",
        "": "empty",
        # Python's json takes these; JSON has no NaN and keeps one value per key
        '{"phase_seconds": NaN}': "not valid JSON: NaN is not a JSON value (JSON has no NaN or"
        " Infinity); give a number",
        '{"x": [-Infinity]}': "not valid JSON: -Infinity is not a JSON value (JSON has no NaN or"
        " Infinity); give a number",
        '{"message": "a", "message": "b"}': "not valid JSON: 'message' appears twice in one"
        " object; give each key once",
        '{"a": {"\\u001b[31m": 1, "\\u001b[31m": 2}}': "not valid JSON: one key appears twice in"
        " one object; give each key once",
    }
    for piped, problem in stdin.items():
        assert refusal("-", piped) == f"error: toolbox task submit: --input - (stdin): {problem}"
    assert task_count(engine) == 0


# --timeout -------------------------------------------------------------------------------

CLOSED_SERVERS = {
    "TOOLBOX_DATABASE_URL": "postgresql://someone@127.0.0.1:1/toolbox",
    "TOOLBOX_REDIS_URL": "redis://127.0.0.1:1/0",
}
"""Nothing answers there: an option let through fails fast on connecting instead."""
WAITING_COMMANDS = {
    "task submit": ("task", "submit", "echo", "--input", '{"message": "t"}', "--wait"),
    "workflow generate": (
        "workflow", "generate", "--subject", "science", "--grade", "6", "--topic", "volcanoes",
        "--wait",
    ),
}  # fmt: skip


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "abc"])
@pytest.mark.parametrize("command", sorted(WAITING_COMMANDS))
def test_timeout_must_be_a_positive_number_of_seconds(command: str, value: str) -> None:
    """``--timeout -1`` printed ``still queued after -1s``; ``--timeout nan`` waited forever."""
    result = toolbox(*WAITING_COMMANDS[command], "--timeout", value, env=CLOSED_SERVERS)
    line = one_error_line(result)
    assert line == (
        f"error: toolbox {command}: --timeout: expected a positive number of seconds, got {value!r}"
    )


# task submit --priority, --idempotency-key ---------------------------------------------------


def test_task_submit_options_are_refused_in_the_terms_of_the_flags(redis_url: str) -> None:
    """Checked before any server is asked: the database here does not answer."""
    env = {"TOOLBOX_DATABASE_URL": CLOSED_PORT_URL, "TOOLBOX_REDIS_URL": redis_url}
    for blank in ("", "  "):
        line = one_error_line(submit("echo", "--idempotency-key", blank, env=env))
        assert line == (
            "error: toolbox task submit: --idempotency-key: empty or blank;"
            " leave the option out for none"
        )
    line = one_error_line(submit("echo", "--idempotency-key", "k" * 256, env=env))
    assert line == (
        "error: toolbox task submit: --idempotency-key: at most 255 characters, got 256"
    )
    line = one_error_line(submit("echo", "--priority", "12", "--idempotency-key", "", env=env))
    assert line == (
        "error: toolbox task submit: --priority: must be between 0 and 9, got 12;"
        " --idempotency-key: empty or blank; leave the option out for none"
    )


def test_task_submit_names_the_flag_of_a_key_used_by_another_request(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    first = client.submit("echo", {"message": "first"}, idempotency_key="lesson-42")
    line = one_error_line(
        submit("echo", "--input", '{"message": "other"}', "--idempotency-key", "lesson-42",
               env=toolbox_env)
    )  # fmt: skip
    assert line == (
        f"error: toolbox task submit: --idempotency-key: already used by task {first}"
        " with a different input;"
        " a key may be reused only with the same agent and input"
    )
    again = submit("echo", "--input", '{"message": "first"}', "--idempotency-key", "lesson-42",
                   env=toolbox_env)  # fmt: skip
    assert again.returncode == 0 and again.stdout.strip() == str(first)
