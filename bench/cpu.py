"""CPU time per process group while one side of a benchmark runs: where a task's cost goes.

Groups: this process (the producer), the worker serving the side (its main
process, its live pool children and the children it has already reaped:
Celery replaces a child every 1,000 tasks), every PostgreSQL process and
every Redis server on the machine.  Nothing else should run meanwhile.
"""

from __future__ import annotations

import contextlib
import statistics
from collections.abc import Iterator
from typing import Any

import psutil

GROUPS = ("producer", "worker", "postgres", "redis")


def _seconds(times: Any, *, reaped: bool = False) -> float:
    used = float(times.user + times.system)
    if reaped:
        used += float(getattr(times, "children_user", 0.0) + getattr(times, "children_system", 0.0))
    return used


def sample(worker_pid: int) -> dict[tuple[str, int], float]:
    """CPU seconds used so far, by (group, pid); the worker is one entry, its whole tree."""
    used = {("producer", 0): _seconds(psutil.Process().cpu_times())}
    with contextlib.suppress(psutil.NoSuchProcess):
        main = psutil.Process(worker_pid)
        tree = _seconds(main.cpu_times(), reaped=True)
        for child in main.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                tree += _seconds(child.cpu_times())
        used["worker", 0] = tree
    for process in psutil.process_iter(["name"]):
        name = process.info["name"] or ""
        group = "postgres" if name.startswith("postgres") else "redis" if "redis" in name else None
        if group is not None:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                used[group, process.pid] = _seconds(process.cpu_times())
    return used


def spent(
    before: dict[tuple[str, int], float], after: dict[tuple[str, int], float]
) -> dict[str, float]:
    """CPU seconds per group between two samples.

    A process that started in between counts whole; one that ended in
    between (a closed database connection) is missed, which undercounts
    slightly.  A reaped pool child stays in its worker's total.
    """
    groups = dict.fromkeys(GROUPS, 0.0)
    for (group, pid), seconds in after.items():
        groups[group] += seconds - before.get((group, pid), 0.0)
    return groups


class Ledger:
    """Milliseconds of CPU per task for each group, over the rounds of one side."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, float]] = []

    @contextlib.contextmanager
    def measure(self, worker_pid: int, tasks: int) -> Iterator[None]:
        before = sample(worker_pid)
        yield
        groups = spent(before, sample(worker_pid))
        self.rounds.append({g: seconds * 1000 / tasks for g, seconds in groups.items()})

    def line(self) -> str:
        """``producer / worker / PostgreSQL / Redis = total``, medians over the rounds."""
        per = {g: statistics.median(r[g] for r in self.rounds) for g in GROUPS}
        parts = " / ".join(f"{per[g]:.2f}" for g in GROUPS)
        return f"{parts} = {sum(per.values()):.2f}"
