"""Syntax check of generated Luau with the real tree-sitter Luau grammar.

Generated scripts are stored only once they parse (DESIGN decision 6).  The
parser is built lazily, once per process, so a prefork worker builds its own
after the fork; a lock serialises parses because a tree-sitter ``Parser`` is
not safe to share between threads.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator

import tree_sitter
import tree_sitter_luau
from pydantic import BaseModel

_LOCK = threading.Lock()
MAX_ERRORS = 20


class LuauError(BaseModel):
    """A syntax error at a 1-based line and column (columns count bytes)."""

    line: int
    column: int
    message: str


class LuauCheck(BaseModel):
    """Whether a source parses, with the errors that make it fail."""

    ok: bool
    errors: list[LuauError]


@functools.cache
def _parser() -> tree_sitter.Parser:
    return tree_sitter.Parser(tree_sitter.Language(tree_sitter_luau.language()))


def _problems(node: tree_sitter.Node) -> Iterator[tree_sitter.Node]:
    if node.is_error or node.is_missing:
        yield node
    for child in node.children:
        if child.has_error or child.is_missing:
            yield from _problems(child)


def _message(node: tree_sitter.Node) -> str:
    if node.is_missing:
        return f"missing {node.type!r}"
    text = (node.text or b"").decode("utf-8", "replace").strip().splitlines()
    snippet = text[0][:40] if text else ""
    return f"unexpected {snippet!r}" if snippet else "syntax error"


def check_luau(source: str) -> LuauCheck:
    """Parse ``source`` and report every ERROR and MISSING node."""
    with _LOCK:
        tree = _parser().parse(source.encode("utf-8", "surrogatepass"))
    if not tree.root_node.has_error:
        return LuauCheck(ok=True, errors=[])
    errors = [
        LuauError(
            line=node.start_point.row + 1,
            column=node.start_point.column + 1,
            message=_message(node),
        )
        for node in _problems(tree.root_node)
    ]
    return LuauCheck(
        ok=False,
        errors=errors[:MAX_ERRORS] or [LuauError(line=1, column=1, message="syntax error")],
    )
