"""The Luau syntax check accepts real Luau and locates broken code."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agents.luau import check_luau

VALID = """--!strict
local Players = game:GetService("Players")
type Score = {name: string, value: number}
export type Pair<T> = {first: T, second: T}

local function add(a: number, b: number): number
\tlocal total = a
\ttotal += b
\treturn total
end

local score: Score = {name = "Ada", value = add(1, 2)}
score.value *= 2
print(`{score.name} has {score.value} points`)
for index, player in Players:GetPlayers() do
\tif index > 3 then
\t\tcontinue
\tend
\tlocal label = if player.Team then player.Team.Name else "none"
\tprint(label :: string)
end
Players.PlayerAdded:Connect(function(player: Player)
\tprint(`welcome {player.Name}`)
end)
"""


def test_real_luau_parses() -> None:
    result = check_luau(VALID)
    assert result.ok, result.errors
    assert result.errors == []


@pytest.mark.parametrize(
    "source",
    [
        "",
        "local x: number = 1\nx += 1\n",
        "print(`interpolated {1 + 2} and {`nested`}`)\n",
        "local function f<T>(value: T): T\n\treturn value\nend\n",
        'local Players = game:GetService("Players")\n',
    ],
)
def test_luau_constructs(source: str) -> None:
    assert check_luau(source).ok


@pytest.mark.parametrize(
    ("source", "line", "column", "message"),
    [
        ("local a = 1\nlocal b = (2 +\nprint(a)\n", 3, 9, "missing ')'"),
        ("local function f()\n  return 1\n", 2, 11, "missing 'end'"),
        ("local t = {1, 2,, 3}\n", 1, 17, "unexpected ','"),
    ],
)
def test_broken_code_reports_position(source: str, line: int, column: int, message: str) -> None:
    result = check_luau(source)
    assert not result.ok
    assert (result.errors[0].line, result.errors[0].column) == (line, column)
    assert result.errors[0].message == message


def test_every_error_has_a_position() -> None:
    result = check_luau("local x = \nif then end\nlocal = 5\n")
    assert not result.ok
    assert all(error.line >= 1 and error.column >= 1 for error in result.errors)
    assert result.model_dump()["errors"][0].keys() == {"line", "column", "message"}


def test_parser_is_not_built_at_import() -> None:
    code = "import agents.luau as l; assert l._parser.cache_info().currsize == 0"
    subprocess.run([sys.executable, "-c", code], check=True)
