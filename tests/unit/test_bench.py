"""The benchmarks explain themselves: ``python -m bench.X --help`` (nothing is measured here)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DEFAULTS = {
    "bench.engine": {"--tasks": "2000", "--rounds": "3", "--rate": "100.0", "--seconds": "10.0"},
    "bench.workflow": {"--sequential": "5", "--batch": "30"},
    "bench.lms_sync": {
        "--courses": "200", "--students": "29", "--assignments": "10", "--grades": "2000",
    },
}  # fmt: skip


@pytest.mark.parametrize("module", sorted(DEFAULTS))
def test_help_names_the_command_and_explains_every_option(module: str) -> None:
    """It said ``usage: engine.py`` and listed the options bare."""
    result = subprocess.run(
        [sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "COLUMNS": "200"}, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {module} ["), result.stdout
    lines = result.stdout.splitlines()
    for option, default in DEFAULTS[module].items():
        line = next(line for line in lines if line.lstrip().startswith(f"{option} "))
        described = line.lstrip().split("  ", 1)  # the option and its metavar, then the help
        assert len(described) == 2 and described[1].strip(), line
        assert line.endswith(f"(default: {default})"), line


def test_cpu_per_group_counts_a_new_process_whole_and_an_ended_one_not_at_all() -> None:
    """A database connection opened mid-round counts; one closed mid-round cannot go negative."""
    from bench.cpu import spent

    before = {("producer", 0): 1.0, ("worker", 0): 2.0, ("postgres", 10): 5.0,
              ("postgres", 11): 9.0}  # fmt: skip
    after = {("producer", 0): 1.5, ("worker", 0): 3.0, ("postgres", 10): 5.25,
             ("postgres", 12): 0.5, ("redis", 20): 0.125}  # fmt: skip
    assert spent(before, after) == {"producer": 0.5, "worker": 1.0, "postgres": 0.75,
                                    "redis": 0.125}  # fmt: skip
