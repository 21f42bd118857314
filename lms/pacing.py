"""Client-side pacing: at most ``limit`` requests in any rolling window of ``window`` seconds.

An LMS that limits a key to so many requests in a short window (Schoology: 50 in
5 seconds per consumer key) answers HTTP 429 past it.  ``LMSHttp`` rides a 429
out (``Retry-After``, backoff), but each one costs a request that counted against
the limit, a retry and a wait longer than the limit needed: a district's sync,
hundreds of roster pages in a row, ran into them again and again.  A pacer keeps
the client under the limit instead: ``wait`` before each send sleeps just until
one more request fits.

The LMS counts a request when it arrives, by its own clock, and the time on the
way varies: counted from when it was sent, one request arrives late and a later
one early, and the LMS sees ``limit`` + 1 in its window (a roster read paced that
way against a fake Schoology that counts arrivals: 5 to 7 answers 429 in 57
requests).  So a request counts for ``window`` seconds from its answer, when the
LMS has surely counted it.  The caller sends one request at a time (``LMSHttp``):
the answer came by the next ``wait``, the time it is counted from.  A request
that has to wait goes at the instant the oldest leaves the window; the ``limit``
latest requests are all that need remembering.
"""

from __future__ import annotations

import logging
import math
import time
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)


class RollingWindow:
    """Sleep before a request that would make ``limit`` + 1 in ``window`` seconds.

    ``clock`` and ``sleep`` are the client's (monotonic seconds; a test's fakes).
    One instance per client, which sends one request at a time: not for threads.
    """

    def __init__(
        self,
        limit: int,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit < 1:
            raise ValueError(f"a pacer's limit must be at least 1 request, got {limit}")
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"a pacer's window must be a positive number of seconds, got {window}")
        self.limit = limit
        self.window = window
        self._clock = clock
        self._sleep = sleep
        self._sent: deque[float] = deque(maxlen=limit)

    def __repr__(self) -> str:
        return f"RollingWindow(limit={self.limit}, window={self.window})"

    def wait(self) -> float:
        """Sleep until one more request keeps within the limit; the seconds slept.

        The previous request was answered by now, so it counts from now; this one
        counts from the time it goes until the next call.  After a sleep it goes at
        the time it was due, or later if the clock says so: a sleep that returns
        early (a test's, which does not move the clock) never loops.
        """
        now = self._clock()
        if self._sent:
            self._sent[-1] = max(self._sent[-1], now)
        pause = 0.0
        if len(self._sent) == self.limit:
            due = self._sent[0] + self.window
            if due > now:
                pause = due - now
                log.debug("%d requests in %gs: pausing %.3fs", self.limit, self.window, pause)
                self._sleep(pause)
                now = max(self._clock(), due)
        self._sent.append(now)  # at ``maxlen``, the oldest request leaves
        return pause
