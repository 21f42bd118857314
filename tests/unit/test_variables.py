"""A ``TOOLBOX_*`` variable no setting reads is refused, naming it, not silently ignored."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup

from models.errors import ConfigurationError
from workers.cli import app
from workers.settings import load_settings, setting_variables
from workers.variables import OTHERS

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bTOOLBOX_[A-Z0-9_]+")
MISSPELT_ON_PURPOSE = {Path(__file__).resolve(), ROOT / "tests" / "unit" / "test_settings.py"}
SKIPPED_FOLDERS = {"__pycache__", "docs", "node_modules"}
SUGGESTION = "did you mean TOOLBOX_CONCURRENCY?"
README_EXAMPLE = "TOOLBOX_CONCURENCY"
"""The README's example of a refused name."""


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.upper().startswith("TOOLBOX_"):
            monkeypatch.delenv(key)


@pytest.mark.parametrize(
    ("variable", "expected"),
    [
        ("TOOLBOX_CONCURENCY", f"TOOLBOX_CONCURENCY: unknown variable, {SUGGESTION}"),
        ("TOOLBOX_DATADIR", "did you mean TOOLBOX_DATA_DIR?"),
        ("TOOLBOX_RETENTION_USAGE_DAY", "did you mean TOOLBOX_RETENTION_USAGE_DAYS?"),
        ("TOOLBOX_TEST_DATABASE", "did you mean TOOLBOX_TEST_DATABASE_URL?"),
        ("toolbox_concurency", "toolbox_concurency: unknown variable, did you mean"),
    ],
)
def test_a_misspelt_variable_is_refused_with_a_suggestion(
    monkeypatch: pytest.MonkeyPatch, variable: str, expected: str
) -> None:
    """``TOOLBOX_CONCURENCY=8`` used to leave the concurrency at 2 without a word."""
    monkeypatch.setenv(variable, "abc")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert expected in error.value.message
    assert "\n" not in error.value.message


@pytest.mark.parametrize("variable", ["toolbox_concurrency", "Toolbox_Concurrency"])
def test_a_setting_not_in_capitals_is_refused(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    """pydantic-settings read ``toolbox_concurrency=4``, the Procfile's ``-c
    ${TOOLBOX_CONCURRENCY:-2}`` did not: the settings said 4, the workers ran 2."""
    monkeypatch.setenv(variable, "4")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    assert error.value.message == (
        f"{variable}: write it TOOLBOX_CONCURRENCY (the Procfile and docker-compose.yml"
        " read that spelling only)"
    )


def test_an_unknown_variable_far_from_any_setting_gets_no_guess(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TOOLBOX_FOO", "1")
    monkeypatch.setenv("TOOLBOX_WHATEVER_ELSE", "1")
    with pytest.raises(ConfigurationError) as error:
        load_settings()
    message = error.value.message
    assert message.startswith("TOOLBOX_FOO: unknown variable")
    assert "; TOOLBOX_WHATEVER_ELSE: unknown variable" in message
    assert "did you mean" not in message and "\n" not in message


def test_an_empty_unknown_variable_is_as_good_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOOLBOX_CONCURENCY", "")
    assert load_settings().concurrency == 2


@pytest.mark.parametrize("variable", sorted(OTHERS))
def test_the_projects_own_other_variables_are_accepted(
    monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "x")
    load_settings()


def _project_files() -> Iterator[Path]:
    for folder, subfolders, files in os.walk(ROOT):
        subfolders[:] = [
            name
            for name in subfolders
            if name not in SKIPPED_FOLDERS
            and not name.endswith(".egg-info")
            and (not name.startswith(".") or name == ".ci")
        ]
        for name in files:
            yield Path(folder, name)


def test_every_variable_the_project_names_is_accepted() -> None:
    """Code, tests, benchmarks, Procfile, docker-compose, CI: a name used anywhere but
    refused by the settings would stop every command where it is set."""
    known = setting_variables() | OTHERS
    found: dict[str, Path] = {}
    for path in _project_files():
        if path in MISSPELT_ON_PURPOSE or path.suffix in {".pyc", ".db", ".pem"}:
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        for name in NAME.findall(text):
            if not name.endswith("_"):  # a prefix in prose: TOOLBOX_RETENTION_*, TOOLBOX_<NAME>
                found.setdefault(name, path.relative_to(ROOT))
    assert "TOOLBOX_TEST_REDIS_URL" in found  # the walk reached tests/conftest.py
    assert found.pop(README_EXAMPLE) == Path("README.md")
    assert {name: path for name, path in found.items() if name not in known} == {}


def _commands(command: Any) -> Iterator[Any]:
    yield command
    if isinstance(command, TyperGroup):
        for sub in command.commands.values():
            yield from _commands(sub)


def test_every_command_line_environment_variable_is_accepted() -> None:
    """``toolbox lms add`` reads its secrets from ``TOOLBOX_LMS_*``: settings must allow them."""
    envvars = {
        envvar
        for command in _commands(typer.main.get_command(app))
        for param in command.params
        for envvar in ([param.envvar] if isinstance(param.envvar, str) else param.envvar or [])
    }
    assert "TOOLBOX_LMS_API_KEY" in envvars
    assert envvars <= OTHERS | setting_variables()
