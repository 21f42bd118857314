"""Pacing to a rate limit: the rolling window alone, then Schoology against a fake that
enforces its limit per consumer key (429 past it), by its own clock.

A district's sync read hundreds of roster pages in a row and ran into Schoology's
429s again and again, each a request wasted and a retry.  The fake here answers 429
exactly as the limit says; its clock and the client's move only when the client
sleeps, so network and handling take no time at all: the harshest case for a pacer,
where one request too early is one request too many.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from functools import partial

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from lms.base import ConnectionConfig, Credentials
from lms.pacing import RollingWindow
from lms.registry import make_client
from lms.schoology import SchoologyClient
from lms.store import NewIntegration, add_integration
from tests.integration.lms_support import sync
from tests.lms.fakes import Dataset, FakeSchoology
from tests.lms.fakes.schoology import API_UID
from workers.secrets import secret_box

KEY, SECRET = "consumer-key", "consumer-secret-do-not-print"
PACED = {"requests_per_window": "5", "window_seconds": "1"}  # as ``--option`` stores them


class Clock:
    """Monotonic seconds that move only when slept on."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


# the rolling window alone ---------------------------------------------------------------
# Each ``wait`` sends a request whose answer came by the next ``wait``: it counts from then.


def test_exactly_the_limit_goes_at_once_and_the_next_waits_for_the_oldest_to_leave() -> None:
    clock = Clock()
    pacer = RollingWindow(3, 2.0, clock=clock, sleep=clock.sleep)
    for at in (100.0, 100.25, 100.5):
        clock.now = at
        assert pacer.wait() == 0.0
    clock.now = 101.0
    assert pacer.wait() == 1.25  # the first, answered by 100.25, leaves the window at 102.25
    assert clock.now == 102.25
    assert pacer.wait() == 0.25  # then the second, answered by 100.5, at 102.5
    assert clock.sleeps == [1.25, 0.25]


def test_at_the_window_edge_the_oldest_has_left() -> None:
    """A request exactly ``window`` after the oldest's answer goes; a hair before, it waits
    the hair."""
    clock = Clock()
    pacer = RollingWindow(2, 1.0, clock=clock, sleep=clock.sleep)
    pacer.wait()
    pacer.wait()  # the first answered at once: it counts from 100.0
    clock.now = 101.0
    assert pacer.wait() == 0.0  # the second, answered by 101.0, counts from then
    clock.now = 101.9375
    assert pacer.wait() == 0.0625 and clock.now == 102.0
    assert pacer.wait() == 0.9375  # the one answered by 101.9375 leaves at 102.9375
    assert clock.sleeps == [0.0625, 0.9375]


def test_after_a_quiet_spell_only_the_last_request_still_counts() -> None:
    """Its answer came at some time in the spell, which the pacer cannot tell: it counts
    from the spell's end; the others left the window long ago."""
    clock = Clock()
    pacer = RollingWindow(4, 5.0, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        pacer.wait()
    clock.now += 60
    assert [pacer.wait() for _ in range(4)] == [0.0, 0.0, 0.0, 5.0]
    assert clock.sleeps == [5.0]


def test_no_window_ever_holds_more_than_the_limit() -> None:
    """Requests asked for at random moments, each answered by the next: each goes at least
    ``window`` after the answer of the request ``limit`` before it, the time the LMS has
    surely counted that one, and a request that waited went at exactly that time."""
    clock = Clock()
    limit, window = 5, 1.0
    pacer = RollingWindow(limit, window, clock=clock, sleep=clock.sleep)
    draw = random.Random(7)
    asked: list[float] = []
    sent: list[float] = []
    for _ in range(400):
        clock.now += draw.choice((0.0, 0.0, 0.01, 0.05, 0.2, 0.7))
        asked.append(clock.now)
        slept = pacer.wait()
        sent.append(clock.now)
        if len(sent) > limit:
            answered = asked[-limit]  # the request ``limit`` back, answered by the next ask
            assert sent[-1] >= answered + window
            assert not slept or sent[-1] == answered + window
    assert sum(clock.sleeps) > 0


def test_a_sleep_that_does_not_move_the_clock_never_loops() -> None:
    """A test's ``sleeps.append``: each request waits once, and goes at the time it was due."""
    slept: list[float] = []
    pacer = RollingWindow(2, 1.0, clock=lambda: 0.0, sleep=slept.append)
    assert [pacer.wait() for _ in range(6)] == [0.0, 0.0, 1.0, 1.0, 2.0, 2.0]
    assert slept == [1.0, 1.0, 2.0, 2.0]


@pytest.mark.parametrize(
    ("limit", "window", "said"),
    [
        (0, 5.0, "limit must be at least 1 request, got 0"),
        (50, 0.0, "window must be a positive number of seconds, got 0.0"),
        (50, float("inf"), "got inf"),
        (50, float("nan"), "got nan"),
    ],
)
def test_a_pacer_that_could_never_send_is_refused(limit: int, window: float, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        RollingWindow(limit, window)


# Schoology against a fake that enforces the limit ------------------------------------------


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def schoology(clock: Clock) -> Iterator[FakeSchoology]:
    """One section of 230 students and a teacher, 20 to a page: 12 roster pages."""
    data = Dataset.generate(courses=1, students_per_course=230, assignments_per_course=2)
    with FakeSchoology(data, consumer_key=KEY, consumer_secret=SECRET, max_limit=20) as server:
        server.limit_rate(5, 1.0, clock)
        yield server


def connect(fake: FakeSchoology, clock: Clock, options: dict[str, str]) -> SchoologyClient:
    config = ConnectionConfig("schoology", fake.base_url,
                              Credentials(client_id=KEY, client_secret=SECRET),
                              options={"user_id": API_UID, **options})  # fmt: skip
    return SchoologyClient(config, sleep=clock.sleep, clock=clock)


def test_the_fake_answers_429_to_a_client_paced_above_the_limit(
    schoology: FakeSchoology, clock: Clock
) -> None:
    """Paced to 50 requests a second, the client meets the fake's 429s and their retries."""
    section = next(iter(schoology.data.courses))
    with connect(schoology, clock, {**PACED, "requests_per_window": "50"}) as client:
        assert len(list(client.list_roster(section))) == 231
    assert len(schoology.rate_limited) == 2  # the 6th and the 11th page, asked again
    assert len(schoology.requests) == 14


def test_the_pacer_waits_before_a_retry_too(schoology: FakeSchoology, clock: Clock) -> None:
    """A 429 that is not the limit's (a proxy's): the retry is a request like any other."""
    schoology.limit_rate(1, 1.0, clock)
    schoology.throttle(times=1, retry_after=None)
    with connect(schoology, clock, {**PACED, "requests_per_window": "1"}) as client:
        assert len(list(client.list_courses())) == 1
    backoff, pacing = clock.sleeps
    assert 0 <= backoff <= 0.5 and pacing == 1.0  # a window after the 429 came
    assert schoology.rate_limited == []


def test_a_paced_sync_reads_a_roster_of_many_windows_without_a_429(
    engine: Engine, toolbox_env: dict[str, str], schoology: FakeSchoology, clock: Clock
) -> None:
    """The limit set through the integration's options, 5 requests a second; the sync
    asks for the sections, the assignments and 12 roster pages: three windows."""
    new = NewIntegration("schoology", "Shelbyville", schoology.base_url,
                         Credentials(client_id=KEY, client_secret=SECRET),
                         options={"user_id": API_UID, **PACED})  # fmt: skip
    with Session(engine) as session, session.begin():
        integration: uuid.UUID = add_integration(session, new, secret_box()).id

    paced = partial(make_client, sleep=clock.sleep, clock=clock)
    report = sync(engine, integration, client_factory=paced)

    assert (report.status, report.courses_failed) == ("success", 0), report.message
    assert report.enrollments.inserted == 231 and report.assignments.inserted == 2
    assert schoology.rate_limited == []
    assert len(schoology.requests) == 14
    assert clock.sleeps == [1.0, 1.0]  # the 6th and the 11th request, nothing else
