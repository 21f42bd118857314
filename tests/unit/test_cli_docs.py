"""The README documents every command's options as ``--help`` shows them.

The README's command table had lost ``task list --limit``/``--json``,
``workflow generate --timeout``, ``migrate [REVISION]`` and ``lms status``
without an id; ``toolbox status --help`` said it read only PostgreSQL.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.core import TyperGroup
from typer.testing import CliRunner

from lms.registry import CLIENTS
from workers.cli import app

README = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")


def _leaves(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _leaves(command, (*path, name))
        else:
            yield " ".join((*path, name)), command


def _groups(group: TyperGroup, path: tuple[str, ...] = ()) -> Iterator[str]:
    yield " ".join(path)
    for name, command in group.commands.items():
        if isinstance(command, TyperGroup):
            yield from _groups(command, (*path, name))


ROOT_GROUP = typer.main.get_command(app)
assert isinstance(ROOT_GROUP, TyperGroup)
COMMANDS = dict(_leaves(ROOT_GROUP))
EVERY_COMMAND = sorted([*COMMANDS, *_groups(ROOT_GROUP)])
"""Each leaf and group, ``""`` for ``toolbox`` itself."""
PYTHON_TYPE = re.compile(r"<[a-z][\w\[\]| ]*>")
"""Typer 0.29's metavar: ``<bool>``, ``<str>``, ``<int range>``, ``<list[str]>``."""


def _section(title: str) -> str:
    return re.split(r"\n##+ ", README.split(f"\n{title}\n", 1)[1], maxsplit=1)[0]


def _table_usage(path: str) -> str:
    """The first cell of the command table's row for ``toolbox <path>``."""
    for line in _section("### Command line").splitlines():
        usage = line.split("`")[1] if line.startswith("| `toolbox ") else ""
        words = re.match(r"toolbox ((?:[a-z][a-z-]* ?)+)", usage)
        if words and words.group(1).strip() == path:
            return usage
    raise AssertionError(f"no row for `toolbox {path}` in the README's command table")


def _documented(path: str) -> str:
    """Where the README documents ``toolbox <path>``: its table row, or the LMS section."""
    return _section("### Commands") if path.startswith("lms ") else _table_usage(path)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_every_option_is_documented(path: str) -> None:
    documented = _documented(path)
    for param in COMMANDS[path].params:
        names = [name for name in (*param.opts, *param.secondary_opts) if name.startswith("--")]
        if names and names != ["--help"]:
            assert any(name in documented for name in names), (path, names)


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_an_optional_argument_is_shown_as_optional(path: str) -> None:
    documented = _documented(path)
    for param in COMMANDS[path].params:
        if param.param_type_name != "argument" or param.required:
            continue
        if path.startswith("lms "):  # the examples run it both ways
            assert re.search(rf"toolbox {path} +#", documented), path
            assert re.search(rf"toolbox {path} [0-9a-f]+ ", documented), path
        else:
            assert f"[{param.metavar}]" in documented, (path, param.metavar)


def test_every_platform_option_key_is_documented() -> None:
    documented = _section("### Commands")
    for platform, client in CLIENTS.items():
        for key in client.option_keys:
            assert f"`{key}`" in documented, (platform, key)


def test_status_help_names_both_servers_it_reads() -> None:
    help_text = COMMANDS["status"].help or ""
    assert "PostgreSQL" in help_text and "Redis" in help_text, help_text


@pytest.mark.parametrize("path", EVERY_COMMAND)
def test_help_shows_no_metavar_for_a_flag_and_no_python_type(path: str) -> None:
    """``--wait <bool>`` read as if the flag took a value, ``agent <str>`` spoke Python."""
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout, result.stdout
    assert not PYTHON_TYPE.search(result.stdout), result.stdout
    assert "``" not in result.stdout, result.stdout  # a docstring's markup, not help


@pytest.mark.parametrize("path", EVERY_COMMAND)
def test_help_text_wraps_once_at_80_columns(path: str) -> None:
    """Typer keeps a docstring's line breaks: a line too long for 80 columns left one word
    on a line of its own (``toolbox up --help`` showed "... and" / "that" / "PostgreSQL")."""
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "80"})
    lines = [line.strip() for line in result.stdout.splitlines()]
    orphans = [
        (line, after) for line, after in itertools.pairwise(lines)
        if line and after and " " not in line and not line.startswith(("╭", "│", "╰", "Usage"))
    ]  # fmt: skip
    assert not orphans, result.stdout


def test_help_shows_a_value_as_click_names_it_or_by_its_own_metavar() -> None:
    result = CliRunner().invoke(app, ["task", "submit", "--help"], env={"COLUMNS": "200"})
    rows = {}  # a parameter's name: the two words after it
    for row in result.stdout.splitlines():
        words = row.strip("│ ").removeprefix("*").split()
        if row.startswith("│") and words:
            rows[words[0]] = " ".join(words[1:3])
    assert rows["agent"] == "TEXT Agent"
    assert rows["--input"] == "JSON|-|@FILE Input"
    assert rows["--priority"] == "INTEGER 0"
    assert rows["--timeout"] == "SECONDS How"
    assert rows["--wait"] == "Wait until"
    assert rows["--help"] == "Show this"


@pytest.mark.parametrize("path", sorted(COMMANDS))
def test_the_usage_line_names_each_argument_as_the_readme_does(path: str) -> None:
    """Typer 0.29 wrote ``Usage: toolbox task submit [OPTIONS] {agent}``: braces to type?"""
    result = CliRunner().invoke(app, [*path.split(), "--help"], env={"COLUMNS": "200"})
    usage = next(line for line in result.stdout.splitlines() if "Usage:" in line)
    arguments = usage.split(f"toolbox {path} [OPTIONS]", 1)[1].split()
    assert len(arguments) == sum(p.param_type_name == "argument" for p in COMMANDS[path].params)
    for argument in arguments:
        assert re.fullmatch(r"\[?[A-Z_]+\]?(\.\.\.)?", argument), usage
        # the lms commands share a row: ``toolbox lms add PLATFORM \\| update ID \\| ...``
        row = _table_usage("lms add") if path.startswith("lms ") else _table_usage(path)
        assert f"{path.removeprefix('lms ')} {argument}" in row, (path, argument)
