"""Command output sent to a file or a pipe is not wrapped or cut at 80 columns.

Under cron, systemd or a script no standard stream is a terminal, and rich
then sized every console at 80 columns: ``toolbox config > settings.txt`` cut
the database URL with an ellipsis and wrapped sentences before an id.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.table import Table

from workers.cli.consoles import CommandConsole

TOOLBOX = str(Path(sys.executable).parent / "toolbox")
DATABASE_URL = "postgresql://app:pw@db-primary.district-9.example.org:5432/toolbox_production"
SHOWN_URL = "postgresql+psycopg://app:***@db-primary.district-9.example.org:5432/toolbox_production"
SENTENCE = (
    "sync of 99aaf4fb-c257-4cef-8b21-3deba99f9550 queued on the lms queue "
    "(task 5e870d1c-7c2b-415f-a9e6-f40cff2f6b20)"
)


def config_piped(tmp_path: Path, **extra: str) -> str:
    """``toolbox config`` with stdin, stdout and stderr none of them a terminal."""
    env = {
        name: value for name, value in os.environ.items()
        if not name.startswith("TOOLBOX_") and name not in ("COLUMNS", "LINES")
    }  # fmt: skip
    env |= {"TOOLBOX_DATABASE_URL": DATABASE_URL, "TOOLBOX_REDIS_URL": "redis://127.0.0.1:6379/9",
            "TOOLBOX_DATA_DIR": str(tmp_path), **extra}  # fmt: skip
    result = subprocess.run(
        [TOOLBOX, "config"], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=120, start_new_session=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_config_written_to_a_pipe_shows_whole_values_one_row_a_line(tmp_path: Path) -> None:
    shown = config_piped(tmp_path)
    (row,) = [line for line in shown.splitlines() if "TOOLBOX_DATABASE_URL" in line]
    assert SHOWN_URL in row, shown
    assert "…" not in shown
    assert any("TOOLBOX_RETENTION_ERROR_LOGS_RESOLVED_DAYS" in line for line in shown.splitlines())


def test_columns_still_sets_the_width(tmp_path: Path) -> None:
    shown = config_piped(tmp_path, COLUMNS="60")
    assert max(len(line) for line in shown.splitlines()) <= 60
    assert SHOWN_URL not in shown


@pytest.mark.parametrize("columns", [None, "not a number"])
def test_a_console_for_a_file_neither_wraps_nor_cuts(
    monkeypatch: pytest.MonkeyPatch, columns: str | None
) -> None:
    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    written = io.StringIO()
    console = CommandConsole(file=written)
    console.print(SENTENCE)
    table = Table("setting", "value")
    table.add_row("TOOLBOX_DATABASE_URL", SHOWN_URL)
    console.print(table)
    lines = written.getvalue().splitlines()
    assert lines[0] == SENTENCE
    assert any(SHOWN_URL in line for line in lines), lines
