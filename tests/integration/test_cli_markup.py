"""Text from the database is shown as written, never read as rich markup.

An institution name, an LMS's error or a task's error may hold brackets: rich
read ``[openai]`` as a style (dropping it from ``pip install
'toolboxai-worker[openai]'``) and a stray closing tag such as ``[/x]`` as a
markup error, a traceback in every command that showed it.
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Engine, text

from tests.integration.test_lms_cli import toolbox

INSTITUTION = "Spring[/x]field [bold]High"
ERROR = "model provider 'openai' is not installed: pip install 'toolboxai-worker[openai]'"


def test_an_institution_name_with_brackets_shows_as_written_everywhere(
    toolbox_env: dict[str, str],
) -> None:
    env = {**toolbox_env, "TOOLBOX_LMS_API_KEY": "token-1"}
    added = toolbox("lms", "add", "canvas", "--institution", INSTITUTION,
                    "--base-url", "https://canvas.example.edu", env=env)  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert INSTITUTION in added.stdout
    integration = added.stdout.split()[3]

    for command in (["lms", "list"], ["lms", "status"], ["status"]):
        shown = toolbox(*command, env=env)
        assert shown.returncode == 0, (command, shown.stderr)
        assert "Traceback" not in shown.stderr, command
    detail = toolbox("lms", "status", integration, env=env)
    assert detail.returncode == 0, detail.stderr
    assert INSTITUTION in detail.stdout


def test_a_task_error_with_brackets_shows_as_written(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    submitted = toolbox("task", "submit", "echo", "--json", env=toolbox_env)
    assert submitted.returncode == 0, submitted.stderr
    task_id = json.loads(submitted.stdout)["id"]
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE agent_tasks SET status = 'failed', completed_at = now(),"
                 " error_message = :error WHERE id = :id"), {"error": ERROR, "id": task_id},
        )  # fmt: skip

    shown = toolbox("task", "show", task_id, env=toolbox_env)
    assert shown.returncode == 0, shown.stderr
    assert "'toolboxai-worker[openai]'" in shown.stdout


def test_a_key_file_name_with_brackets_shows_as_written(
    toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    key = tmp_path / "tool[x].pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o644)
    added = toolbox("lms", "add", "lti", "--institution", "Springfield",
                    "--base-url", "https://lms.example.edu", "--private-key-file", str(key),
                    env={**toolbox_env, "COLUMNS": "300"})  # fmt: skip
    assert f"warning: {key} is readable by other users; chmod 600 it" in added.stderr, added.stderr
