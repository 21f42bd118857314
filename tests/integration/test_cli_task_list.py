"""``toolbox task list`` stays readable at a terminal's usual 80 columns.

Seven columns, the full id among them, did not fit in 80: rich squeezed every
one of them, so a cancelled supervisor task read ``4f2946a6… │ supervis… │
cancell…`` and its error wrapped over five lines, a word per line. A pipe
(``| grep``) gets the same 80 columns.
"""

from __future__ import annotations

import json

from sqlalchemy import Engine, text

from tests.integration.test_lms_cli import toolbox

ERROR = "workflow cancelled: cancelled by a user who changed their mind"


def _cancelled_supervisor(toolbox_env: dict[str, str], engine: Engine) -> str:
    submitted = toolbox(
        "task", "submit", "supervisor", "--json",
        "--input", '{"subject": "science", "grade_level": 6, "topic": "volcanoes"}',
        env=toolbox_env,
    )  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    task_id: str = json.loads(submitted.stdout)["id"]
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE agent_tasks SET status = 'cancelled', completed_at = now(),"
                 " error_message = :error WHERE id = :id"), {"error": ERROR, "id": task_id},
        )  # fmt: skip
    return task_id


def test_task_list_shows_whole_values_and_a_usable_id_at_80_columns(
    toolbox_env: dict[str, str], engine: Engine
) -> None:
    task_id = _cancelled_supervisor(toolbox_env, engine)

    listed = toolbox("task", "list", env={**toolbox_env, "COLUMNS": "80"})
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines), listed.stdout
    (row,) = [line for line in lines if task_id[:8] in line and "supervisor" in line]
    assert "cancelled" in row and "…" not in row, listed.stdout
    # the error whole (it fits), on one line, by the id a command takes
    assert f"{task_id[:8]}: {ERROR}" in lines, listed.stdout

    shown = toolbox("task", "show", task_id[:8], env=toolbox_env)
    assert shown.returncode == 0 and task_id in shown.stdout, shown.stderr
