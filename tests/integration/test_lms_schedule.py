"""Which syncs are due, the claim that runs each once, and syncs on real worker processes."""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from lms.base import Credentials
from lms.schedule import claim_due, claim_now, sync_lock
from lms.store import NewIntegration, add_integration
from tests.integration.lms_support import add_canvas, claimed_ids, integration_row
from tests.integration.test_lms_cli import toolbox
from tests.lms.fakes import Dataset, FakeCanvas
from tests.lms.fakes.blackboard import FakeBlackboard
from tests.lms.fakes.server import Fault, RecordedRequest, Reply
from tests.workers import StartWorker, WorkerProcess, wait_for
from workers.app import app
from workers.cli.lms import TOOK_OVER
from workers.secrets import secret_box


@pytest.fixture
def canvas() -> Iterator[FakeCanvas]:
    with FakeCanvas(Dataset.generate(courses=4, students_per_course=3)) as server:
        yield server


@pytest.fixture
def make(engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas) -> Any:
    """An integration whose last sync (if any) was ``ago`` before now with ``status``.

    The first is the fake Canvas itself; later ones sit at addresses of their own
    (a second integration of one LMS is refused) and are never synced.
    """
    made: list[uuid.UUID] = []

    def make(status: str | None = None, ago: str | None = None, **fields: Any) -> uuid.UUID:
        address = canvas.base_url + (f"/school-{len(made)}" if made else "")
        integration = add_canvas(engine, address, canvas.token, **fields)
        made.append(integration)
        if status is not None:
            _set(engine, integration, status, ago or "0 seconds")
        return integration

    return make


def test_due_follows_each_integrations_own_settings_read_at_every_tick(
    engine: Engine, make: Any
) -> None:
    never = make()
    recent = make("success", "2 hours")
    failed = make("failed", "20 minutes")  # retried after 15 minutes, not 24 hours
    failed_just_now = make("failed", "5 minutes")
    partial = make("partial", "20 minutes")  # retried after an hour
    stale = make("success", "25 hours")
    hourly = make("success", "2 hours", sync_frequency_hours=1)
    inactive = make()
    _deactivate(engine, inactive)

    with engine.begin() as connection:
        claimed = set(claimed_ids(claim_due(connection)))
    assert claimed == {never, failed, stale, hourly}
    assert not claimed & {recent, failed_just_now, partial, inactive}
    assert {integration_row(engine, i).last_sync_status for i in claimed} == {"running"}
    with engine.begin() as connection:
        assert claim_due(connection) == [], "claimed rows are not due again"

    with engine.begin() as connection:  # an operator changes the frequency; beat keeps running
        connection.execute(
            text("UPDATE lms_integrations SET sync_frequency_hours = 1 WHERE id = :id"),
            {"id": recent},
        )
    with engine.begin() as connection:
        assert claimed_ids(claim_due(connection)) == [recent]


def test_a_running_claim_is_taken_again_only_when_its_worker_is_gone_for_a_while(
    engine: Engine, make: Any
) -> None:
    dead = make("running", "20 minutes")
    alive = make("running", "20 minutes")
    just_queued = make("running", "1 minute")
    with sync_lock(engine, alive) as held:
        assert held
        with engine.begin() as connection:
            assert claimed_ids(claim_due(connection)) == [dead]
        with engine.begin() as connection:
            refused = claim_now(connection, alive)
            assert not refused.claimed and "already running" in (refused.reason or "")
            assert claim_now(connection, just_queued).claimed, "an operator need not wait"
        with sync_lock(engine, alive) as again:
            assert not again, "a second holder steps aside"


def test_two_beats_ticking_at_once_claim_each_integration_once(
    engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas
) -> None:
    token = Credentials(api_key="t0ken-x")
    schools = [
        NewIntegration("canvas", "District", f"{canvas.base_url}/{n}", token) for n in range(40)
    ]
    with Session(engine) as session, session.begin():
        box = secret_box()
        ids = {add_integration(session, new, box).id for new in schools}
    barrier = threading.Barrier(2)
    results: list[list[uuid.UUID]] = [[], []]

    def tick(slot: int) -> None:
        with engine.begin() as connection:
            barrier.wait()
            results[slot] = claimed_ids(claim_due(connection))

    threads = [threading.Thread(target=tick, args=(slot,)) for slot in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not set(results[0]) & set(results[1])
    assert set(results[0]) | set(results[1]) == ids


@pytest.mark.worker
def test_two_beats_and_a_duplicate_message_run_one_sync_on_the_workers(
    engine: Engine, start_worker: StartWorker, make: Any, canvas: FakeCanvas
) -> None:
    integration = make()
    workers = [start_worker(queues="lms", concurrency=2) for _ in range(2)]
    for _ in range(2):
        app.send_task("toolbox.lms.schedule_syncs")
    wait_for(lambda: integration_row(engine, integration).last_sync_status == "success", 30)
    app.send_task("toolbox.lms.sync", args=[str(integration)])  # a redelivered message
    app.send_task("toolbox.lms.schedule_syncs")  # the next tick: nothing is due

    wait_for(lambda: _done(workers, "toolbox.lms.sync") == 2, 15)
    wait_for(lambda: _done(workers, "toolbox.lms.schedule_syncs") == 3, 15)

    assert len(_course_lists(canvas)) == 1, "one sync ran"
    row = integration_row(engine, integration)
    assert row.last_sync_status == "success"
    assert _count(engine, "lms_courses") == 4 and _count(engine, "lms_enrollments") == 16


@pytest.mark.worker
def test_expired_tokens_and_a_5xx_storm_mid_sync_still_end_in_success(
    engine: Engine, toolbox_env: dict[str, str], start_worker: StartWorker
) -> None:
    with FakeBlackboard(Dataset.generate(courses=5, students_per_course=4)) as blackboard:
        expired: list[RecordedRequest] = []

        def expire_mid_sync(request: RecordedRequest) -> bool:
            if len(blackboard.requests) == 6 and not expired:
                expired.append(request)
                blackboard.expire_all_tokens()
            return False

        blackboard.inject(Fault(match=expire_mid_sync))
        blackboard.server_errors(times=3, status=503, path="/learn/api/public/v1/courses/")
        blackboard.throttle(times=2, retry_after="1", path="/learn/api/public/v2/courses/")
        credentials = Credentials(client_id=blackboard.app_key, client_secret=blackboard.app_secret)
        new = NewIntegration("blackboard", "Shelbyville", blackboard.base_url, credentials)
        with Session(engine) as session, session.begin():
            integration = add_integration(session, new, secret_box()).id
        with engine.begin() as connection:
            claim = claim_now(connection, integration)
        start_worker(queues="lms", concurrency=1)
        _queue(integration, claim.run_id)
        wait_for(lambda: integration_row(engine, integration).last_sync_status != "running", 60)

        row = integration_row(engine, integration)
        assert row.last_sync_status == "success", row.sync_error_message
        assert expired and blackboard.unauthorized >= 1 and len(blackboard.token_requests()) >= 2
        assert _count(engine, "lms_courses") == 5 and _count(engine, "lms_enrollments") == 25


@pytest.mark.worker
def test_a_sync_whose_worker_was_killed_is_claimed_again_once_stale(
    engine: Engine, start_worker: StartWorker, make: Any, canvas: FakeCanvas
) -> None:
    integration = make()
    course = list(canvas.data.courses)[2]
    canvas.delay_response(20.0, path=f"/api/v1/courses/{course}/enrollments")
    worker = start_worker(queues="lms", concurrency=1)
    app.send_task("toolbox.lms.schedule_syncs")
    wait_for(lambda: canvas.requests_to(f"/api/v1/courses/{course}/enrollments"), 30)
    worker.kill()
    assert integration_row(engine, integration).last_sync_status == "running"
    with engine.begin() as connection:
        assert claim_due(connection) == [], "not stale yet"
    _set(engine, integration, "running", "20 minutes")  # time passes; no worker holds its lock

    start_worker(queues="lms", concurrency=1)
    app.send_task("toolbox.lms.schedule_syncs")
    wait_for(lambda: integration_row(engine, integration).last_sync_status == "success", 30)
    assert _count(engine, "lms_courses") == 4


@pytest.mark.worker
def test_an_operators_sync_during_a_retry_wait_takes_over_and_the_waiting_chain_ends(
    engine: Engine,
    toolbox_env: dict[str, str],
    start_worker: StartWorker,
    make: Any,
    canvas: FakeCanvas,
) -> None:
    """``lms sync`` while beat's run waits for its retry: one chain runs, not two alternately.

    Beat's run is throttled (a 15 s retry: the operator's command, started on a busy
    machine, must claim before it wakes); the operator's claim takes the row over and its
    message fails on every attempt (four, then ``failed``), each answer 4 s late, so that
    chain still runs when beat's retry wakes (at 15 s; the chain takes 22 s or more).
    Beat's retry finds a newer claim and ends (or, waking while one of the operator's
    attempts holds the sync, finds it running and ends): the LMS is asked 1 + 4 times,
    not 1 + 4 + 3.
    """
    integration = make()
    course_list = _is_course_list
    canvas.inject(Fault(1, Reply.json({}, 429, {"Retry-After": "15"}), match=course_list))
    canvas.inject(Fault(100, Reply.text("upstream down", 503), delay=4.0, match=course_list))
    worker = start_worker(queues="lms", concurrency=2, include="tests.quick_sync_retries")
    app.send_task("toolbox.lms.schedule_syncs")
    wait_for(lambda: len(_course_lists(canvas)) == 1, 30)
    beats_run = integration_row(engine, integration).sync_run_id
    wait_for(lambda: "retry: Retry in" in worker.log(), 10)

    queued = toolbox("lms", "sync", str(integration), env=toolbox_env)

    assert queued.returncode == 0 and "queued" in queued.stdout, queued.stderr
    assert TOOK_OVER in queued.stdout.splitlines(), queued.stdout
    assert integration_row(engine, integration).sync_run_id not in {None, beats_run}
    wait_for(lambda: _done([worker], "toolbox.lms.sync") == 2, 60)  # each chain ended
    assert len(_course_lists(canvas)) == 5, "beat's chain ran once, the operator's four times"
    ended = worker.log()
    assert "superseded by a newer claim" in ended or "another process is running" in ended
    row = integration_row(engine, integration)
    assert row.last_sync_status == "failed" and "503" in row.sync_error_message


def _queue(integration: uuid.UUID, run_id: uuid.UUID | None) -> None:
    """The sync message of a claim, as ``toolbox lms sync`` sends it."""
    assert run_id is not None, "claimed"
    app.send_task("toolbox.lms.sync", args=[str(integration)], kwargs={"run_id": str(run_id)})


def _is_course_list(request: RecordedRequest) -> bool:
    return request.path == "/api/v1/courses"


def _set(engine: Engine, integration: uuid.UUID, status: str, ago: str) -> None:
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE lms_integrations SET last_sync_status = :status,"
                " last_sync_at = now() - CAST(:ago AS interval) WHERE id = :id"
            ),
            {"id": integration, "status": status, "ago": ago},
        )


def _deactivate(engine: Engine, integration: uuid.UUID) -> None:
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE lms_integrations SET is_active = false WHERE id = :id"),
            {"id": integration},
        )


def _count(engine: Engine, table: str) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def _course_lists(canvas: FakeCanvas) -> list[RecordedRequest]:
    return [r for r in canvas.requests_to("/api/v1/courses") if r.path == "/api/v1/courses"]


def _done(workers: list[WorkerProcess], task: str) -> int:
    """How many ``task`` runs the workers logged as finished."""
    return sum(
        len(re.findall(rf"Task {re.escape(task)}\[[^\]]+\] succeeded", worker.log()))
        for worker in workers
    )


@pytest.mark.worker
def test_a_failed_sync_on_a_worker_lands_in_the_error_log_without_the_token(
    engine: Engine, start_worker: StartWorker, canvas: FakeCanvas
) -> None:
    secret = "sekret-canvas-token-0043"
    integration = add_canvas(engine, canvas.base_url, secret)
    with engine.begin() as connection:
        claim = claim_now(connection, integration)
    start_worker(queues="lms", concurrency=1)
    _queue(integration, claim.run_id)
    wait_for(lambda: _error_rows(engine, "toolbox.lms.sync") != [], 30)

    (row,) = _error_rows(engine, "toolbox.lms.sync")
    assert (row.error_type, row.severity, row.error_code) == ("LMSSyncFailed", "high", "failed")
    assert "HTTP 401" in row.error_message and secret not in row.error_message
    assert row.request_data == {"integration_id": str(integration), "status": "failed"}
    assert integration_row(engine, integration).last_sync_status == "failed"


def _error_rows(engine: Engine, service: str) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(
                text("SELECT * FROM error_logs WHERE service_name = :service ORDER BY error_type"),
                {"service": service},
            )
        )
