"""Complete learning environments with the offline model, on real workers.

    python -m bench.workflow [--sequential 5] [--batch 30]

(1) seconds for one complete environment (supervisor -> content, quiz,
    terrain, script -> review -> stored), one workflow at a time;
(2) environments per minute with two worker processes (prefork -c 2 each)
    given a batch submitted at once.
"""

from __future__ import annotations

import contextlib
import statistics
import time

from bench.harness import arguments, scratch_stack, servers, worker
from workers import workflows

REQUEST = {
    "subject": "science",
    "grade_level": 6,
    "topic": "volcanoes",
    "learning_objectives": ["Explain why volcanoes erupt"],
}
OPTIONS = {
    "--sequential": (5, "N", "workflows run one at a time: seconds for one environment"),
    "--batch": (30, "N", "workflows submitted at once: environments per minute"),
}


def one_at_a_time(count: int) -> list[float]:
    times = []
    for index in range(count):
        started = time.perf_counter()
        view = workflows.wait(workflows.generate({**REQUEST, "topic": f"volcanoes {index}"}), 120)
        assert view.status == "completed", view.error
        times.append(time.perf_counter() - started)
    return times


def batch(count: int) -> float:
    started = time.perf_counter()
    ids = [workflows.generate({**REQUEST, "topic": f"plate tectonics {i}"}) for i in range(count)]
    for workflow_id in ids:
        view = workflows.wait(workflow_id, 600)
        assert view.status == "completed", view.error
    return count / (time.perf_counter() - started) * 60


def main() -> None:
    args = arguments("bench.workflow", __doc__, OPTIONS)
    with servers() as (admin_url, redis_url), scratch_stack(admin_url, redis_url) as env:
        with contextlib.ExitStack() as stack:
            stack.enter_context(worker("workers.app", "agents", env))
            one_at_a_time(1)  # warm-up
            times = one_at_a_time(args.sequential)
            stack.enter_context(worker("workers.app", "agents", env))
            per_minute = batch(args.batch)
    print(
        f"one environment: median {statistics.median(times):.2f} s, max {max(times):.2f} s"
        f" ({args.sequential} runs, one worker process -c 2)"
    )
    print(f"throughput: {per_minute:.0f} environments/minute (two worker processes -c 2 each)")


if __name__ == "__main__":
    main()
