"""Usage errors in one line: ``error: toolbox task list: --limit: must be at least 1, got '0'``.

Typer refuses a value that does not convert, an unknown option or command, a
missing argument or an extra one with a usage message: the usage line, a hint
and the error in a box wrapped at the terminal's width.  Every command's
arguments are parsed, and its subcommand looked up, inside the root command's
``make_context`` or ``invoke``, so ``OneLineUsage``, the root command's class,
sees each of these refusals of every command below it and prints it as the
README's other errors are printed (``fail``: one red ``error:`` line, exit
status 2, which is also click's for a usage error).  The line starts with the
command as typed; a bad value, a missing parameter and an unknown option or
command are worded here, naming the flag and what it takes, anything else in
typer's words (``got unexpected extra argument(s) (x)``).  A value a command
refuses after parsing (``--status bogus``, ``--priority 12``) is a ``Refused``
naming its flag, which this prefixes with the command in the same way.  A
group alone (``toolbox``, ``toolbox task``) prints its help on stdout and
exits 0, as ``--help`` does.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import typer
from pydantic import ValidationError
from typer._click.core import Context, Parameter
from typer._click.exceptions import (  # typer vendors click and exports only BadParameter
    BadParameter,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)
from typer.core import TyperGroup

from models.errors import shown
from workers.cli.failures import fail

WORDS = "toolbox.words"
"""``ctx.meta`` key: the words after ``toolbox``, for an error that names no command."""
BOUNDS = {"greater_than_equal": ("at least", "ge"), "less_than_equal": ("at most", "le")}
"""pydantic's errors for a number outside an option's ``min``/``max``: words, bound."""


class Refused(UsageError):
    """A value the command refuses once parsed; the message starts with the flag(s) it names.

    ``--status: unknown status 'x'; valid: ...``.  Raised by a command, it is
    printed as every usage error is, after the command as typed.
    """


def refused(flag: str, message: str) -> Refused:
    """The refusal of ``flag``'s value: ``message`` says what is wrong with it."""
    return Refused(f"{flag}: {message}")


class OneLineUsage(TyperGroup):
    """The root command: any usage error of a command below it is one ``error:`` line."""

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: Context | None = None,
        **extra: Any,
    ) -> Context:
        words = list(args)
        with _one_line(info_name or str(self.name), self, words):
            ctx = super().make_context(info_name, args, parent, **extra)
        ctx.meta[WORDS] = words
        return ctx

    def invoke(self, ctx: Context) -> Any:
        with _one_line(ctx.command_path, self, ctx.meta[WORDS]):
            return super().invoke(ctx)


@contextmanager
def _one_line(root: str, group: TyperGroup, words: list[str]) -> Iterator[None]:
    try:
        yield
    except NoArgsIsHelpError as exc:  # a group without a command: its help, as --help gives it
        typer.echo(exc.message, color=exc.ctx.color if exc.ctx is not None else None)
        sys.exit(0)
    except UsageError as exc:
        command = exc.ctx.command_path if exc.ctx is not None else _typed(root, group, words)
        fail(f"{command}: {_problem(exc)}")


def _typed(root: str, group: TyperGroup, words: list[str]) -> str:
    """The command ``words`` name, for the errors typer raises without a context.

    (``--limit`` without its value, ``--json=yes``.)  A group takes no option
    but ``--help``, which ends the run at once, so the words up to the first
    that is no subcommand are the command.
    """
    path: list[str] = [root]
    command: Any = group
    for word in words:
        if not isinstance(command, TyperGroup) or word not in command.commands:
            break
        path.append(word)
        command = command.commands[word]
    return " ".join(path)


def _problem(exc: UsageError) -> str:
    if isinstance(exc, Refused):
        return exc.message
    if isinstance(exc, MissingParameter) and exc.param is not None:
        return f"missing {exc.param.param_type_name} {_name(exc.param)}"
    if isinstance(exc, BadParameter) and exc.param is not None:
        return f"{_name(exc.param)}: {_bad_value(exc)}"
    if isinstance(exc, NoSuchOption) and exc.ctx is not None:
        close = " or ".join(sorted(exc.possibilities or ()))
        guess = f"; did you mean {close}?" if close else ""
        params = exc.ctx.command.get_params(exc.ctx)
        known = _known("options", [name for param in params for name in _flags(param)])
        return f"no such option {exc.option_name}{guess}{known}"
    problem = _clauses(exc.message)
    if exc.ctx is not None and isinstance(exc.ctx.command, TyperGroup):
        problem += _known("commands", list(exc.ctx.command.commands))  # no such command
    return problem


def _flags(param: Parameter) -> list[str]:
    """An option's flags, ``--no-`` forms included; none for an argument."""
    if param.param_type_name != "option":
        return []
    return [*param.opts, *param.secondary_opts]


def _name(param: Parameter) -> str:
    """An option by its flags (``--limit``), an argument as the usage line names it (``ID``)."""
    if param.param_type_name == "option":
        return "/".join(param.opts)
    return str(param.metavar or (param.name or "").upper())


def _bad_value(exc: BadParameter) -> str:
    """What is wrong with the value, in the words of the project's other refusals.

    Typer checks a value with pydantic and words the first error; a parser's
    ``ValueError`` (``workers.cli.options``) says what it expected and got.
    """
    cause = exc.__cause__
    error = cause.errors()[0] if isinstance(cause, ValidationError) and cause.errors() else None
    if error is not None and error["type"] in BOUNDS:
        words, key = BOUNDS[error["type"]]
        return f"must be {words} {error['ctx'][key]}, got {shown(error['input'])}"
    if error is not None and error["type"] == "int_parsing":
        return f"expected a whole number, got {shown(error['input'])}"
    return _clauses(exc.message.removeprefix("Value error, "))


def _known(what: str, names: Sequence[str]) -> str:
    return f" ({what}: {', '.join(names)})"


def _clauses(message: str) -> str:
    """Typer's sentences on one line: ``No such command 'x'. Did you mean 'y'?`` becomes
    ``no such command 'x'; did you mean 'y'?``."""
    sentences = re.split(r"(?<=[.?!])\s+", " ".join(message.split()))
    return "; ".join(s[:1].lower() + _unstopped(s[1:]) for s in sentences if s)


def _unstopped(sentence: str) -> str:
    """The sentence without its full stop; an ellipsis (a value cut short) stays whole."""
    return sentence if sentence.endswith("...") else sentence.removesuffix(".")
