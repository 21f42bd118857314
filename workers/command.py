"""``toolbox``'s entry point: a Ctrl-C while the command line loads ends it quietly.

Loading the commands (Celery, SQLAlchemy, pydantic, rich) takes about a
second; a Ctrl-C in it printed a ``KeyboardInterrupt`` traceback of a dozen
lines.  Once loaded, ``workers.cli.main`` handles Ctrl-C and SIGTERM itself.
"""

from __future__ import annotations

import sys

INTERRUPTED = 130
"""The shell's status for a command ended by Ctrl-C (128 + SIGINT)."""


def main() -> None:
    try:
        from workers.cli import main as run
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED)
    run()
