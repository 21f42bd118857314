"""The grade drain's lines: a grade refused for good is a WARNING, one that waits is not."""

from __future__ import annotations

import logging
from functools import partial

import pytest
from sqlalchemy import Engine

from lms.drain import drain
from lms.registry import make_client
from tests.integration.lms_support import (
    add_canvas,
    complete_attempt,
    link_quiz,
    students_of,
    sync,
)
from tests.lms.fakes import Dataset, FakeCanvas, Fault, RecordedRequest, Reply
from tests.lms.fakes.canvas import UNAUTHORIZED
from workers.secrets import secret_box


def put_to(path: str, reply: Reply) -> Fault:
    """``reply`` to the grade PUT at ``path`` only (a prefix would match user 10 for user 1)."""

    def matches(request: RecordedRequest) -> bool:
        return request.method == "PUT" and request.path == path

    return Fault(times=10, reply=reply, match=matches)


def test_a_grade_refused_for_good_is_a_warning_and_one_that_waits_is_info(
    engine: Engine, toolbox_env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    """``failed (PUT ... rejected with HTTP 400 ...)`` was logged at INFO, unseen by a worker
    logging warnings."""
    data = Dataset.generate(courses=1, students_per_course=2, assignments_per_course=1)
    with FakeCanvas(data) as canvas:
        integration = add_canvas(engine, canvas.base_url, canvas.token)
        assert sync(engine, integration).status == "success"
        course = next(iter(data.courses))
        assignment = data.course_assignments(course)[0].id
        quiz = link_quiz(engine, [assignment])
        (refused, refused_lms), (waiting, waiting_lms) = students_of(engine, course)
        submissions = f"/api/v1/courses/{course}/assignments/{assignment}/submissions/"
        invalid = Reply.json({"errors": [{"message": "invalid posted_grade"}]}, 400)
        canvas.inject(put_to(submissions + refused_lms, invalid))
        # backs off: the next sync may find the course restricted
        canvas.inject(put_to(submissions + waiting_lms, Reply.json(UNAUTHORIZED, 401)))
        complete_attempt(engine, quiz, refused, 60)
        complete_attempt(engine, quiz, waiting, 70)
        with caplog.at_level(logging.INFO, logger="lms.drain"):
            report = drain(engine, secrets=secret_box,
                           client_factory=partial(make_client, sleep=lambda _: None))  # fmt: skip

    assert (report.failed, report.retrying) == (1, 1)
    lines = {
        record.levelname: record.getMessage()
        for record in caplog.records
        if record.name == "lms.drain" and record.getMessage().startswith("grade passback ")
    }
    assert set(lines) == {"WARNING", "INFO"}
    assert ": failed (PUT " in lines["WARNING"] and "rejected with HTTP 400" in lines["WARNING"]
    assert ": pending (PUT " in lines["INFO"] and "HTTP 401" in lines["INFO"]
