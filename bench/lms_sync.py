"""District-size LMS sync and grade passback against the local fake Canvas, one run.

    python -m bench.lms_sync [--courses 200] [--students 29] [--assignments 10] [--grades 2000]

(a) first sync of 200 courses, 6,000 enrollments (29 students + 1 teacher
    each) and 2,000 assignments, in-process as ``toolbox lms sync --now``
    runs it (target <= 30 s), then a no-change re-sync;
(b) rows the re-sync wrote to the synced tables, from PostgreSQL's own
    counters (``pg_stat_user_tables`` n_tup_ins + n_tup_upd + n_tup_del,
    read after the writing connections closed) (target 0);
(c) grades passed back per second: attempts completed (one passback row
    each, written in the attempt's transaction), then drained by a real
    ``lms`` worker (prefork -c 2, two drain tasks at once) against the fake.
"""

from __future__ import annotations

import os
import time
import uuid
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.orm import Session

from bench.harness import arguments, scratch_stack, servers, wait_until, worker
from lms.base import Credentials
from lms.passback import record_attempt_completion
from lms.schedule import claim_now
from lms.secrets import generate_key
from lms.store import NewIntegration, add_integration
from lms.sync import SyncReport, run_sync
from tests.lms.fakes import Dataset, FakeCanvas
from workers.app import app
from workers.db import get_engine, reset_engine
from workers.secrets import secret_box

SYNCED = ("lms_courses", "lms_assignments", "lms_enrollments", "lms_user_links", "users")
OPTIONS = {
    "--courses": (200, "N", "courses in the fake Canvas"),
    "--students": (29, "N", "students per course (each course has one teacher too)"),
    "--assignments": (10, "N", "assignments per course"),
    "--grades": (2000, "N", "quiz attempts completed, then passed back (<= courses x students)"),
}


def row_writes() -> dict[str, int]:
    """Rows inserted, updated or deleted so far, per table, as PostgreSQL counted them."""
    reset_engine()  # closing the connections makes their backends flush their counters
    time.sleep(0.5)
    with get_engine().connect() as connection:
        connection.execute(text("SELECT pg_stat_clear_snapshot()"))
        rows = connection.execute(
            text(
                "SELECT relname, n_tup_ins + n_tup_upd + n_tup_del AS n FROM pg_stat_user_tables"
                " WHERE relname = ANY(:tables)"
            ),
            {"tables": [*SYNCED, "lms_integrations"]},
        )
        counted = {row.relname: int(row.n) for row in rows}
    reset_engine()
    return counted


def delta(before: dict[str, int], after: dict[str, int], tables: tuple[str, ...]) -> int:
    return sum(after.get(table, 0) - before.get(table, 0) for table in tables)


def timed_sync(integration_id: uuid.UUID) -> tuple[SyncReport, float]:
    with get_engine().begin() as connection:
        claim = claim_now(connection, integration_id)
    assert claim.claimed
    started = time.perf_counter()
    report = run_sync(get_engine(), integration_id, secrets=secret_box, run_id=claim.run_id)
    return report, time.perf_counter() - started


def complete_attempts(grades: int) -> float:
    """Link a quiz to each course's first assignment; finish ``grades`` attempts. Returns s."""
    with get_engine().begin() as connection:
        quiz = connection.execute(
            text("INSERT INTO quizzes (title, subject, grade_level) VALUES ('Bench', 'math', 6)"
                 " RETURNING id")
        ).scalar_one()  # fmt: skip
        connection.execute(
            text(
                "UPDATE lms_assignments a SET toolboxai_quiz_id = :quiz WHERE a.id IN ("
                " SELECT DISTINCT ON (lms_course_id) id FROM lms_assignments"
                " ORDER BY lms_course_id, external_assignment_id)"
            ),
            {"quiz": quiz},
        )
        students = list(
            connection.execute(
                text(
                    "SELECT e.user_id FROM lms_enrollments e JOIN lms_assignments a"
                    " ON a.lms_course_id = e.lms_course_id AND a.toolboxai_quiz_id = :quiz"
                    " WHERE e.role = 'student' ORDER BY e.external_user_id LIMIT :n"
                ),
                {"quiz": quiz, "n": grades},
            ).scalars()
        )
    started = time.perf_counter()
    for number, user in enumerate(students):
        with Session(get_engine()) as session, session.begin():
            attempt = session.execute(
                text("INSERT INTO quiz_attempts (quiz_id, user_id, attempt_number, completed_at,"
                     " score) VALUES (:q, :u, 1, now(), :s) RETURNING id"),
                {"q": quiz, "u": user, "s": Decimal(50 + number % 50)},
            ).scalar_one()  # fmt: skip
            assert len(record_attempt_completion(session, attempt)) == 1
    return time.perf_counter() - started


def passbacks_left() -> int:
    with get_engine().connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM lms_grade_passbacks WHERE status <> 'success'")
            ).scalar_one()
        )


def main() -> None:
    args = arguments("bench.lms_sync", __doc__ or "", OPTIONS)
    os.environ["TOOLBOX_SECRET_KEYS"] = generate_key()  # no development key file in the repo
    data = Dataset.generate(args.courses, args.students, args.assignments)
    with (
        servers() as (admin_url, redis_url),
        scratch_stack(admin_url, redis_url) as env,
        FakeCanvas(data) as canvas,
    ):
        new = NewIntegration("canvas", "Bench District", canvas.base_url,
                             Credentials(api_key=canvas.token))  # fmt: skip
        with Session(get_engine()) as session, session.begin():
            integration = add_integration(session, new, secret_box()).id
        start = row_writes()
        first, first_seconds = timed_sync(integration)
        before = row_writes()
        again, again_seconds = timed_sync(integration)
        after = row_writes()
        record_seconds = complete_attempts(args.grades)
        grades = passbacks_left()
        with worker("workers.app", "lms", env):
            started = time.perf_counter()
            for _ in range(2):
                app.send_task("toolbox.lms.drain_passbacks")
            wait_until(lambda: passbacks_left() == 0, timeout=600, interval=0.2)
            drain_seconds = time.perf_counter() - started
        applied = len(data.api_writes())
    enrollments = first.enrollments.inserted
    print(f"dataset: {first.courses.inserted} courses, {enrollments} enrollments, "
          f"{first.assignments.inserted} assignments ({first.status})")  # fmt: skip
    print(f"first sync                  {first_seconds:8.2f} s   (target <= 30 s)")
    print(f"rows written by it          {delta(start, before, SYNCED):8d}     (the counters work)")
    print(f"no-change re-sync           {again_seconds:8.2f} s   ({again.status})")
    print(f"rows written by the re-sync {delta(before, after, SYNCED):8d}     (target 0; "
          f"plus {delta(before, after, ('lms_integrations',))} lms_integrations updates: "
          "claim and result)")  # fmt: skip
    print(f"attempts completed          {grades / record_seconds:8.1f} /s  (passback row in "
          "the same transaction)")  # fmt: skip
    print(f"grades passed back          {grades / drain_seconds:8.1f} /s  ({grades} grades, "
          f"{applied} writes seen by the LMS, 1 worker -c 2)")  # fmt: skip


if __name__ == "__main__":
    main()
