"""Layers point one way, and the command line does not load what only workers need."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FORBIDDEN = {
    "agents": {"celery", "kombu", "tasks", "workers"},
    "lms": {"celery", "kombu", "tasks", "workers"},
    "models": {"agents", "lms", "tasks", "workers", "celery", "kombu"},
}


def _imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, wherever the import statement sits."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_no_higher_layer(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(_imported_packages(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {name: what for name, what in wrong.items() if what} == {}


def test_the_command_line_loads_no_langchain_and_no_alembic() -> None:
    """Importing it loaded langchain through the agent kinds (about 0.9 s of CPU a command)
    and Alembic for the three commands that migrate or check the schema (about 0.3 s)."""
    probe = "import sys, workers.cli; print(sorted({m.split('.')[0] for m in sys.modules}))"
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    loaded = set(ast.literal_eval(result.stdout))
    assert "workers" in loaded
    assert not {"langchain", "langchain_core", "langsmith", "alembic", "mako"} & loaded
