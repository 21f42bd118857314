"""Agent task engine vs raw Celery, same broker, database and machine, one run.

    python -m bench.engine [--tasks 2000] [--rounds 3] [--rate 100] [--seconds 10]

(a) raw Celery no-op tasks per second (bare app, same reliability options;
    the task only increments a Redis counter so the run knows when it ended);
(b) echo agent tasks per second through the whole lifecycle (row insert,
    dispatch, lease, slot, claim, five SPARC states, metrics, completion),
    submitted one at a time and in batches (``submit_many``);
then the ratio b/a of the medians of interleaved rounds, measured twice: with Celery task events off
(Celery's default) and on (``TOOLBOX_TASK_EVENTS``, what Flower needs); and
submit -> running latency (``started_at - created_at``) percentiles at a
fixed offered rate, events on.  Workers: prefork -c 2.
"""

from __future__ import annotations

import statistics
import time
import uuid

import redis
from sqlalchemy import text

from bench.harness import arguments, percentile, scratch_stack, servers, wait_until, worker
from workers import client
from workers.db import get_engine
from workers.redis import client_url

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


def agent_rate(tasks: int, *, batch: int) -> float:
    started = time.perf_counter()
    ids: list[uuid.UUID] = []
    if batch == 1:
        for _ in range(tasks):
            ids.append(client.submit("echo", {}))
    else:
        for offset in range(0, tasks, batch):
            ids += client.submit_many("echo", [{}] * min(batch, tasks - offset))
    wait_until(lambda: finished(ids, ("completed",)) >= tasks, 600, interval=0.1)
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
    wait_until(lambda: finished(ids) == len(ids), 120, interval=0.1)
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


def rates(
    env: dict[str, str], tasks: int, rounds: int, *, events: bool
) -> tuple[float, float, float]:
    """Median (raw no-op, agent submit(), agent submit_many) tasks/s over interleaved rounds.

    Both workers run throughout (an idle one only waits on the broker); the
    rounds alternate so a slow spell of the machine hits both sides alike.
    """
    from bench import raw_app
    from workers.app import app

    env["TOOLBOX_TASK_EVENTS"] = "true" if events else "false"
    app.conf.task_send_sent_event = raw_app.app.conf.task_send_sent_event = events
    raw, single, batched = [], [], []
    with worker("bench.raw_app", "raw", env), worker("workers.app", "agents", env):
        raw_rate(200)  # warm-up: connections, imports, caches
        agent_rate(200, batch=100)
        for _ in range(rounds):
            raw.append(raw_rate(tasks))
            single.append(agent_rate(tasks, batch=1))
            batched.append(agent_rate(tasks, batch=100))
    return statistics.median(raw), statistics.median(single), statistics.median(batched)


def main() -> None:
    args = arguments("bench.engine", __doc__, OPTIONS)
    with servers() as (admin_url, redis_url), scratch_stack(admin_url, redis_url) as env:
        results = {
            events: rates(env, args.tasks, args.rounds, events=events) for events in (False, True)
        }
        with worker("workers.app", "agents", env):
            agent_rate(200, batch=100)
            lat = latency(args.rate, args.seconds)
    for events, (raw, single, batched) in results.items():
        print(f"task events {'on ' if events else 'off'}")
        print(f"  raw Celery no-op              {raw:8.1f} tasks/s")
        print(f"  agent tasks, submit()         {single:8.1f} tasks/s   ratio {single / raw:.2f}")
        print(f"  agent tasks, submit_many(100) {batched:8.1f} tasks/s   ratio {batched / raw:.2f}")
    print(f"(medians of {args.rounds} interleaved rounds of {args.tasks} tasks each)")
    print(
        f"submit -> running at {lat['offered']:.0f}/s offered ({lat['achieved']:.0f}/s achieved,"
        f" events on): p50 {lat['p50']:.1f} ms, p95 {lat['p95']:.1f} ms, p99 {lat['p99']:.1f} ms"
    )


if __name__ == "__main__":
    main()
