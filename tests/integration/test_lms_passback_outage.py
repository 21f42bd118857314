"""A database gone in the middle of a grade drain: one log line, and no grade lost."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Engine

import tasks.lms
from tests.integration.lms_support import complete_attempt, make_all_due, passback_rows, students_of
from tests.integration.ops_support import allow_connections
from tests.integration.test_lms_passback import quiz  # noqa: F401
from tests.lms.fakes import Dataset
from tests.workers import StartWorker, wait_for

pytestmark = [pytest.mark.worker]


def test_a_database_gone_before_the_first_client_is_built_is_one_line_and_no_grade_is_lost(
    engine: Engine, start_worker: StartWorker, quiz: uuid.UUID, course: str,  # noqa: F811
    data: Dataset, assignment: str, tmp_path: Path,
) -> None:  # fmt: skip
    """Reading the integration failed inside the drain's per-grade error handling: the
    database's error was judged as the LMS's answer, logged as a second ERROR line
    (``unexpected error``, a traceback wherever the outage filter is not installed)
    and, had the database answered again, charged to the grade as an attempt."""
    students = students_of(engine, course)
    for user, _ in students:
        complete_attempt(engine, quiz, user, 75)
    name = engine.url.database
    worker = start_worker(
        queues="passback",
        concurrency=1,
        include="tests.drain_outage_hooks",  # the first drain's database is cut after its claim
        extra_env={
            "TESTS_CUT_DATABASE": str(name),
            "TESTS_CUT_MARKER": str(tmp_path / "cut"),
        },
    )
    try:
        tasks.lms.drain_passbacks.delay()
        wait_for(lambda: "raised unexpected" in worker.log(), timeout=60)
    finally:
        allow_connections(engine.url, True)

    lines = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    errors = [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]
    assert [line.get("outage") for line in errors] == ["postgresql unavailable"], errors
    assert errors[0]["msg"].startswith("Task toolbox.lms.drain_passbacks[")
    assert "Traceback" not in worker.log(), worker.log()[-3000:]
    rows = passback_rows(engine)
    assert {(row.status, row.attempt_count) for row in rows} == {("sending", 1)}
    assert data.api_writes() == [], "nothing was sent"

    make_all_due(engine, leases=True)  # the claim's lease ends
    tasks.lms.drain_passbacks.delay()
    wait_for(lambda: {row.status for row in passback_rows(engine)} == {"success"}, timeout=60)
    for _, lms_id in students:
        (write,) = data.api_writes(assignment, lms_id)
        assert write.score == Decimal(75) * data.assignments[assignment].points_possible / 100
