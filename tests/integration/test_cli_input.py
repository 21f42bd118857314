"""What a new user types first: ``workflow generate`` flags.

Every check runs the real ``toolbox`` command against the test servers.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from tests.integration.test_cli import toolbox
from tests.integration.test_cli_errors import one_error_line


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
    assert line.startswith("error: invalid workflow request: --grade: "), line
    for flag in ("--grade", "--topic", "--objective #2", "--duration", "--students",
                 "--accessibility #1", "--language"):  # fmt: skip
        assert f"; {flag}: " in line or f": {flag}: " in line, (flag, line)
    assert "--grade: Input should be less than or equal to 12" in line
    for field in ("grade_level", "learning_objectives", "duration_minutes", "max_students"):
        assert field not in line, (field, line)
    assert "--subject" not in line and "--objective #1" not in line  # those were fine
    assert task_count(engine) == 0
