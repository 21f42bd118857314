"""What ``--help`` shows after a parameter: nothing after a flag, the kind of value after a value.

Typer 0.29 shows each parameter's Python annotation in angle brackets, flags
included (``TyperOption.display_type_rich`` and ``TyperArgument``'s, from
``display_type``): ``--wait <bool>`` reads as if the flag took a value, and
``agent <str>``, ``--limit <int range>`` or ``--option <list[str]>`` speak
Python to a user of the shell.  Typer offers no setting for it and builds its
parameters itself, so ``install`` replaces that one method of both classes,
for every command and the ``--help`` option alike: a flag (``--wait``,
``--grade-passback/--no-grade-passback``, ``--help``) shows no metavar, an
option's own metavar (``JSON|-|@FILE``, ``SECONDS``) is kept, and any other
value shows click's name for its type (``TEXT``, ``INTEGER``, ``FLOAT``,
``PATH``, ``INTEGER RANGE`` before the range), as typer showed before 0.29.
The usage line names an argument as click does (``AGENT``, ``[REVISION]``),
not typer 0.29's ``{agent}``, which reads as a placeholder to type in braces.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, get_args

from typer._click.core import Context
from typer.core import TyperArgument, TyperOption

CLICK_NAMES: dict[Any, str] = {
    str: "TEXT",
    int: "INTEGER",
    float: "FLOAT",
    bool: "BOOLEAN",
    Path: "PATH",
    uuid.UUID: "UUID",
}
"""A value's annotation and the name click gives its type in help."""


def install() -> None:
    """Show flags without a metavar and values as click names them, in every ``--help``."""
    TyperOption.display_type_rich = _option_metavar  # type: ignore[method-assign,assignment]
    TyperArgument.display_type_rich = _kind  # type: ignore[method-assign,assignment]
    TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign,assignment]


def _usage_name(argument: TyperArgument) -> str:
    """``AGENT`` when required, ``[REVISION]`` when not, ``...`` after a repeatable one."""
    name = argument.metavar if argument.metavar is not None else argument.display_name_raw.upper()
    name = name if argument.required else f"[{name}]"
    return f"{name}..." if argument.nargs != 1 else name


def _option_metavar(option: TyperOption, ctx: Context) -> str | None:
    """None for a flag (or a counter): it takes no value."""
    if option.is_flag or option.count:
        return None
    if option.metavar is not None:
        return option.metavar
    kind = _kind(option, ctx)
    return f"{kind}..." if option.nargs != 1 else kind


def _kind(param: TyperArgument | TyperOption, ctx: Context) -> str:
    """Click's name for the value's type: ``TEXT``; a repeatable option's, of one value."""
    described = param.type_descriptor
    annotation = described.annotation
    if described.is_list and not described.is_choice:
        annotation = (get_args(annotation) or (str,))[0]
    name = CLICK_NAMES.get(annotation)
    if name is None or described.is_choice or described.is_datetime or described.is_tuple:
        label = param.display_type(ctx).removeprefix("<").removesuffix(">")
        return f"[{label}]" if described.is_choice else label.upper()
    return f"{name} RANGE" if described.is_ranged else name
