"""Agent task engine vs raw Celery, same broker, database and machine, one run.

    python -m bench.engine [--tasks 2000] [--rounds 3] [--rate 100] [--seconds 10]

(a) raw Celery no-op tasks per second (bare app, same reliability options;
    the task only increments a Redis counter so the run knows when it ended),
    and the same no-op through the agent workers' own app and queue
    (``bench.toolbox_noop``: the configuration's cost without the engine);
(b) echo agent tasks per second through the whole lifecycle (row insert,
    dispatch, lease, slot, claim, five SPARC states, metrics, completion),
    submitted one at a time and in batches (``submit_many``);
then the ratio b/a of the medians of interleaved rounds, and the CPU each
side costs per task by process group (``bench.cpu``), measured twice: with
Celery task events off (Celery's default) and on (``TOOLBOX_TASK_EVENTS``,
what Flower needs); and submit -> running latency (``started_at - created_at``) percentiles at a
fixed offered rate, events on.  Workers: prefork -c 2.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from sqlalchemy import text

from bench.cpu import Ledger
from bench.harness import arguments, percentile, scratch_stack, servers, wait_until, worker
from workers import client
from workers.db import get_engine
from workers.redis import client_url
from workers.settings import get_settings

FINISHED = ("completed", "failed", "cancelled")
OPTIONS = {
    "--tasks": (2000, "N", "tasks per side (raw, submit(), submit_many) and round"),
    "--rounds": (3, "N", "interleaved rounds per events setting; the medians are reported"),
    "--rate": (100.0, "PER_SECOND", "tasks offered per second in the submit -> running run"),
    "--seconds": (10.0, "S", "how long the submit -> running run offers tasks"),
}


def finished(ids: list[uuid.UUID], statuses: tuple[str, ...] = FINISHED) -> int:
    """How many of ``ids`` have reached one of ``statuses``."""
    with get_engine().connect() as connection:
        return int(connection.execute(
            text("SELECT count(*) FROM agent_tasks WHERE id = ANY(:ids)"
                 " AND status = ANY(:statuses)"),
            {"ids": ids, "statuses": list(statuses)},
        ).scalar_one())  # fmt: skip


def wait_finished(
    ids: list[uuid.UUID], statuses: tuple[str, ...] = FINISHED, timeout: float = 600
) -> None:
    """Until every one of ``ids`` has reached one of ``statuses``.

    The last id alone is watched first (one row), then all are counted:
    counting thousands of ids costs about 8 ms of CPU, and ten counts a
    second would take that CPU from the workers being measured (the raw
    side's check is one Redis GET).  Tasks run about in the order they were
    sent, so the full count runs once or twice.
    """
    wait_until(lambda: finished(ids[-1:], statuses) == 1, timeout)
    wait_until(lambda: finished(ids, statuses) >= len(ids), timeout, interval=0.1)


def raw_rate(tasks: int) -> float:
    """No-op tasks/s through the running raw worker, from the first send to the last run."""
    from bench import raw_app

    counter = redis.Redis.from_url(client_url(raw_app.broker))
    counter.set("bench:noop:done", 0)
    started = time.perf_counter()
    with raw_app.app.producer_or_acquire() as producer:
        for _ in range(tasks):
            raw_app.noop.apply_async(producer=producer)
    wait_until(lambda: int(counter.get("bench:noop:done") or 0) >= tasks, 600)
    return tasks / (time.perf_counter() - started)


def toolbox_noop_rate(tasks: int) -> float:
    """No-op tasks/s through the agent worker's app and queue, measured as ``raw_rate``."""
    from bench import toolbox_noop

    counter = redis.Redis.from_url(client_url(get_settings().redis_url or ""))
    counter.set(toolbox_noop.COUNTER, 0)
    started = time.perf_counter()
    toolbox_noop.send(tasks)
    wait_until(lambda: int(counter.get(toolbox_noop.COUNTER) or 0) >= tasks, 600)
    return tasks / (time.perf_counter() - started)


def agent_rate(tasks: int, *, batch: int) -> float:
    started = time.perf_counter()
    ids: list[uuid.UUID] = []
    if batch == 1:
        for _ in range(tasks):
            ids.append(client.submit("echo", {}))
    else:
        for offset in range(0, tasks, batch):
            ids += client.submit_many("echo", [{}] * min(batch, tasks - offset))
    wait_finished(ids, ("completed",))
    return tasks / (time.perf_counter() - started)


def latency(rate: float, seconds: float) -> dict[str, float]:
    count = int(rate * seconds)
    ids: list[uuid.UUID] = []
    started = time.perf_counter()
    for index in range(count):
        delay = started + index / rate - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        ids.append(client.submit("echo", {}))
    achieved = count / (time.perf_counter() - started)  # the offered rate the producer kept up
    wait_finished(ids, timeout=120)
    with get_engine().connect() as connection:
        waits = [
            float(ms) for ms in connection.execute(
                text("SELECT extract(epoch FROM started_at - created_at) * 1000"
                     " FROM agent_tasks WHERE id = ANY(:ids)"),
                {"ids": ids},
            ).scalars()
        ]  # fmt: skip
    return {"offered": rate, "achieved": achieved, "p50": percentile(waits, 50),
            "p95": percentile(waits, 95), "p99": percentile(waits, 99)}  # fmt: skip


@dataclass
class Side:
    """One thing measured: its rates over the rounds and its CPU per task."""

    label: str
    rates: list[float] = field(default_factory=list)
    cpu: Ledger = field(default_factory=Ledger)

    @property
    def rate(self) -> float:
        return statistics.median(self.rates)


SIDES = (
    "raw Celery no-op",
    "no-op on the agent workers",
    "agent tasks, submit()",
    "agent tasks, submit_many(100)",
)


def rates(env: dict[str, str], tasks: int, rounds: int, *, events: bool) -> list[Side]:
    """Each of ``SIDES`` over interleaved rounds (report medians).

    Both workers run throughout (an idle one only waits on the broker); the
    rounds alternate so a slow spell of the machine hits every side alike.
    """
    from bench import raw_app
    from workers.app import app

    env["TOOLBOX_TASK_EVENTS"] = "true" if events else "false"
    app.conf.task_send_sent_event = raw_app.app.conf.task_send_sent_event = events
    sides = [Side(label) for label in SIDES]
    with (
        worker("bench.raw_app", "raw", env) as raw,
        worker("bench.toolbox_noop", "agents", env) as agents,
    ):
        raw_rate(200)  # warm-up: connections, imports, caches
        toolbox_noop_rate(200)
        agent_rate(200, batch=100)
        runs: list[tuple[int, Callable[[], float]]] = [
            (raw.pid, lambda: raw_rate(tasks)),
            (agents.pid, lambda: toolbox_noop_rate(tasks)),
            (agents.pid, lambda: agent_rate(tasks, batch=1)),
            (agents.pid, lambda: agent_rate(tasks, batch=100)),
        ]
        for _ in range(rounds):
            for side, (pid, run) in zip(sides, runs, strict=True):
                with side.cpu.measure(pid, tasks):
                    side.rates.append(run())
    return sides


def main() -> None:
    args = arguments("bench.engine", __doc__, OPTIONS)
    with servers() as (admin_url, redis_url), scratch_stack(admin_url, redis_url) as env:
        results = {
            events: rates(env, args.tasks, args.rounds, events=events) for events in (False, True)
        }
        with worker("workers.app", "agents", env):
            agent_rate(200, batch=100)
            lat = latency(args.rate, args.seconds)
    for events, sides in results.items():
        raw = sides[0].rate
        print(f"task events {'on ' if events else 'off'}")
        for side in sides:
            ratio = "" if side is sides[0] else f"   ratio {side.rate / raw:.2f}"
            print(f"  {side.label:29} {side.rate:8.1f} tasks/s{ratio}")
        print("  CPU per task, ms: producer / worker / PostgreSQL / Redis = total")
        for side in sides:
            print(f"    {side.label:29} {side.cpu.line()}")
    print(f"(medians of {args.rounds} interleaved rounds of {args.tasks} tasks each)")
    print(
        f"submit -> running at {lat['offered']:.0f}/s offered ({lat['achieved']:.0f}/s achieved,"
        f" events on): p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms"
    )


if __name__ == "__main__":
    main()
