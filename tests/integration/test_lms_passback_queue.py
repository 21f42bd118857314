"""Grade drains have a queue and a worker of their own: syncs never hold them back."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from lms.schedule import claim_now
from tests.integration.lms_support import (
    add_canvas,
    complete_attempt,
    link_quiz,
    passback_rows,
    students_of,
    sync,
)
from tests.lms.fakes import Dataset, FakeCanvas
from tests.workers import StartWorker, wait_for
from workers.app import app
from workers.celeryconfig import LMS_QUEUE, PASSBACK_QUEUE


@pytest.fixture
def canvas() -> Iterator[FakeCanvas]:
    with FakeCanvas(Dataset.generate(courses=1, students_per_course=2)) as server:
        yield server


def test_routes_send_drains_to_their_own_queue(toolbox_env: dict[str, str]) -> None:
    route = app.amqp.router.route({}, "toolbox.lms.drain_passbacks")
    assert route["queue"].name == PASSBACK_QUEUE
    assert app.amqp.router.route({}, "toolbox.lms.sync")["queue"].name == LMS_QUEUE


@pytest.mark.worker
def test_a_grade_goes_out_while_a_slow_sync_holds_every_lms_slot(
    engine: Engine, toolbox_env: dict[str, str], start_worker: StartWorker, canvas: FakeCanvas
) -> None:
    """Both drains and syncs went to the ``lms`` queue: two syncs of slow LMSs (each may
    run 50 minutes) held both slots of its worker, and no school's grade went out."""
    integration = add_canvas(engine, canvas.base_url, canvas.token)
    assert sync(engine, integration).status == "success"
    course = next(iter(canvas.data.courses))
    quiz = link_quiz(engine, [canvas.data.course_assignments(course)[0].id])
    (student, _), *_ = students_of(engine, course)
    complete_attempt(engine, quiz, student, 90)

    canvas.delay_response(25.0, path="/api/v1/courses", method="GET")  # the next sync hangs
    before = len(canvas.requests)
    start_worker(queues=LMS_QUEUE, concurrency=1)
    with engine.begin() as connection:
        claim = claim_now(connection, integration)
    app.send_task("toolbox.lms.sync", args=[str(integration)], kwargs={"run_id": str(claim.run_id)})
    wait_for(lambda: len(canvas.requests) > before, 20)  # its first request: the slot is taken
    (hanging,) = canvas.requests[before:]
    assert (hanging.method, hanging.path) == ("GET", "/api/v1/courses")

    start_worker(queues=PASSBACK_QUEUE, concurrency=1)
    app.send_task("toolbox.lms.drain_passbacks")
    wait_for(lambda: passback_rows(engine)[0].status == "success", 20)
    assert canvas.requests[before] is hanging and all(
        "/submissions/" in request.path for request in canvas.requests[before + 1 :]
    ), "the sync is still waiting for its first answer"
