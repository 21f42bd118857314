"""What the periodic jobs share: optional tuning from ``TOOLBOX_*`` and batching.

The worker's own ``Settings`` stay small: each job module declares its
limits as a pydantic-settings class with its own prefix (for example
``TOOLBOX_RETENTION_``) and defaults chosen for schools (keep little, keep
it briefly).  A bad value is one ``ConfigurationError`` line naming it.

Jobs that touch many rows do it in batches, one short transaction each, so
no lock is held for long and a twin run (two beats) picks other rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sqlalchemy import Connection, Engine

Batch = Callable[[Connection, int], int]
"""Changes at most ``limit`` rows on the connection; returns how many it changed."""


def run_batches(
    engine: Engine,
    steps: Sequence[tuple[str, Batch]],
    *,
    batch: int,
    max_batches: int,
    step_seconds: float,
) -> dict[str, int]:
    """Run each step until it changes nothing, ``max_batches`` times, or ``step_seconds``.

    Not "until a short batch": a step may free rows for its next batch (a
    parent task can go once its children are gone).  The time budget keeps a
    backlog from holding the single maintenance process (and the relay behind
    it) for long; the next run goes on where this one stopped.
    """
    changed: dict[str, int] = {}
    for name, step in steps:
        changed[name] = 0
        deadline = time.monotonic() + step_seconds
        for _ in range(max_batches):
            with engine.begin() as connection:
                count = step(connection, batch)
            changed[name] += count
            if count == 0 or time.monotonic() > deadline:
                break
    return changed
