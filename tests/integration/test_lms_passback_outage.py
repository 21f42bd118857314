"""A database gone in the middle of a grade drain: one log line, and no grade lost."""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import Iterator
from decimal import Decimal

import pytest
from sqlalchemy import Engine, create_engine, pool, text

import tasks.lms
from lms.secrets import SecretBox
from tests.integration.lms_support import complete_attempt, make_all_due, passback_rows, students_of
from tests.integration.test_lms_passback import (  # noqa: F401
    assignment,
    canvas,
    course,
    data,
    quiz,
)
from tests.lms.fakes import Dataset
from workers.logs import JsonFormatter
from workers.outages import OutageFilter
from workers.secrets import secret_box


@pytest.fixture
def worker_log() -> Iterator[io.StringIO]:
    """The root logger's lines as a worker writes them (JSON, outages cut to one line)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(OutageFilter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def test_a_database_gone_before_the_first_client_is_built_is_one_line_and_no_grade_is_lost(
    engine: Engine, toolbox_env: dict[str, str], quiz: uuid.UUID, course: str,  # noqa: F811
    data: Dataset, assignment: str, worker_log: io.StringIO, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:  # fmt: skip
    """Reading the integration failed inside the drain's per-grade error handling: the
    database's error was judged as the LMS's answer, logged as a second ERROR line
    (``unexpected error``, a traceback wherever the outage filter is not installed)
    and, had the database answered again, charged to the grade as an attempt."""
    students = students_of(engine, course)
    for user, _ in students:
        complete_attempt(engine, quiz, user, 75)
    name = engine.url.database
    admin = create_engine(
        engine.url.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=pool.NullPool
    )

    def allow_connections(allowed: bool) -> None:
        with admin.connect() as connection:
            connection.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {allowed}'))
            if not allowed:  # this test's own scratch database only
                connection.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = :name"), {"name": name},
                )  # fmt: skip

    def database_goes_away() -> SecretBox:  # the grades are claimed; no client is built yet
        allow_connections(False)
        return secret_box()

    monkeypatch.setattr(tasks.lms, "secret_box", database_goes_away)
    try:
        tasks.lms.drain_passbacks.apply()
    finally:
        allow_connections(True)
        admin.dispose()

    lines = [json.loads(line) for line in worker_log.getvalue().splitlines()]
    errors = [line for line in lines if line["level"] in ("ERROR", "CRITICAL")]
    assert [line.get("outage") for line in errors] == ["postgresql unavailable"], errors
    assert errors[0]["msg"].startswith("Task toolbox.lms.drain_passbacks[")
    assert "Traceback" not in worker_log.getvalue()
    rows = passback_rows(engine)
    assert {(row.status, row.attempt_count) for row in rows} == {("sending", 1)}
    assert data.api_writes() == [], "nothing was sent"

    monkeypatch.setattr(tasks.lms, "secret_box", secret_box)
    make_all_due(engine, leases=True)  # the claim's lease ends
    assert tasks.lms.drain_passbacks.apply().get()["sent"] == len(students)

    assert {row.status for row in passback_rows(engine)} == {"success"}
    for _, lms_id in students:
        (write,) = data.api_writes(assignment, lms_id)
        assert write.score == Decimal(75) * data.assignments[assignment].points_possible / 100
