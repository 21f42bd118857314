"""A fake Canvas to try ``toolbox lms`` against when no LMS is at hand.

    python -m tests.lms.fakes [--courses N] [--students N] [--assignments N]

It prints the two lines ``toolbox lms add canvas`` needs (the base URL and
an API token), then serves a generated school from memory until Ctrl-C.
It is the fake the tests use: Canvas's paging, token auth, throttling and
error shapes as Canvas documents them.
"""

from __future__ import annotations

import argparse
import signal
import threading

from tests.lms.fakes.canvas import FakeCanvas
from tests.lms.fakes.dataset import Dataset


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tests.lms.fakes", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--courses", type=int, default=3, help="courses (default 3)")
    parser.add_argument("--students", type=int, default=5, help="students per course (default 5)")
    parser.add_argument(
        "--assignments", type=int, default=2, help="assignments per course (default 2)"
    )
    args = parser.parse_args()
    if min(args.courses, args.students, args.assignments) < 0:
        parser.error("--courses, --students and --assignments take 0 or more")
    data = Dataset.generate(args.courses, args.students, args.assignments)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with FakeCanvas(data) as canvas:
        print(f"base URL: {canvas.base_url}/", flush=True)
        print(f"API token: {canvas.token}", flush=True)
        try:
            stop.wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
