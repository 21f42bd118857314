"""The consoles commands print through: the terminal's width, never 80 columns for a pipe.

Rich sizes a console that writes to no terminal at 80 columns (when no
standard stream is a terminal either, as under cron, systemd or a script), so
``toolbox config > settings.txt`` cut the database URL to
``postgresql+psycopg://***@127.0.0.1:…`` and printed each table row over two
lines, and a sentence such as ``lms sync``'s ``queued on the lms queue (task
<id>)`` broke before the id.  Written to a file or a pipe, output is now as
wide as its content; ``COLUMNS`` still sets a width when given.
"""

from __future__ import annotations

import os

from rich.console import Console, ConsoleDimensions

UNBOUNDED_WIDTH = 100_000
"""The width of output that goes to no terminal: wider than any line a command prints."""


class CommandConsole(Console):
    """A rich ``Console`` that wraps and truncates only for a terminal (or ``COLUMNS``)."""

    @property
    def size(self) -> ConsoleDimensions:
        found = super().size
        if self.is_terminal or os.environ.get("COLUMNS", "").strip().isdigit():
            return found
        return ConsoleDimensions(UNBOUNDED_WIDTH, found.height)

    @size.setter
    def size(self, new_size: tuple[int, int]) -> None:
        self._width, self._height = new_size


def console(*, stderr: bool = False) -> Console:
    """A console for stdout (or stderr) sized as above."""
    return CommandConsole(stderr=stderr)
