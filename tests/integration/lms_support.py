"""Helpers shared by the LMS integration tests: integrations, quiz attempts, write counters."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from lms.base import Credentials
from lms.passback import record_attempt_completion
from lms.schedule import ClaimedRun, claim_now
from lms.store import NewIntegration, add_integration
from lms.sync import SyncReport, run_sync
from tests.lms.fakes.oneroster import FakeOneRoster
from workers.secrets import secret_box

COUNTED_TABLES = ("lms_courses", "lms_assignments", "lms_enrollments", "lms_user_links", "users")


def add_canvas(engine: Engine, base_url: str, token: str, **fields: Any) -> uuid.UUID:
    new = NewIntegration("canvas", "Springfield", base_url, Credentials(api_key=token), **fields)
    with Session(engine) as session, session.begin():
        integration_id: uuid.UUID = add_integration(session, new, secret_box()).id
    return integration_id


def sync(
    engine: Engine, integration_id: uuid.UUID, *, ignore_not_before: bool = False, **kwargs: Any
) -> SyncReport:
    """Claim and run a sync here, as ``toolbox lms sync --now [--ignore-retry-after]`` does."""
    with engine.begin() as connection:
        claim = claim_now(connection, integration_id, ignore_not_before=ignore_not_before)
    assert claim.claimed
    return run_sync(
        engine,
        integration_id,
        secrets=secret_box,
        ignore_not_before=ignore_not_before,
        run_id=claim.run_id,
        **kwargs,
    )


def claimed_ids(claimed: list[ClaimedRun]) -> list[uuid.UUID]:
    """The integrations of ``claim_due``'s claims, without their run ids."""
    return [claim.integration_id for claim in claimed]


def integration_row(engine: Engine, integration_id: uuid.UUID) -> Any:
    with engine.connect() as connection:
        return connection.execute(
            text("SELECT * FROM lms_integrations WHERE id = :id"), {"id": integration_id}
        ).one()


def count_writes(engine: Engine) -> None:
    """Log every row written to the synced tables (a trigger per table) into ``row_writes``."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE row_writes (tbl text, op text)"))
        connection.execute(
            text(
                "CREATE FUNCTION log_row_write() RETURNS trigger LANGUAGE plpgsql AS $$"
                " BEGIN INSERT INTO row_writes VALUES (TG_TABLE_NAME, TG_OP); RETURN NULL; END $$"
            )
        )
        for table in COUNTED_TABLES:
            connection.execute(
                text(
                    f"CREATE TRIGGER log_write AFTER INSERT OR UPDATE OR DELETE ON {table}"
                    " FOR EACH ROW EXECUTE FUNCTION log_row_write()"
                )
            )


def writes(engine: Engine) -> dict[str, int]:
    """Rows written per ``table:op`` since the last call (the log is emptied)."""
    with engine.begin() as connection:
        rows = connection.execute(
            text("DELETE FROM row_writes RETURNING tbl || ':' || op AS key")
        ).scalars()
        counted: dict[str, int] = {}
        for key in rows:
            counted[key] = counted.get(key, 0) + 1
    return counted


def scalar(engine: Engine, sql: str, **params: Any) -> Any:
    with engine.connect() as connection:
        return connection.execute(text(sql), params).scalar_one()


def add_oneroster(engine: Engine, fake: FakeOneRoster) -> uuid.UUID:
    credentials = Credentials(client_id=fake.client_id, client_secret=fake.client_secret)
    new = NewIntegration(
        "oneroster", "District 9", fake.base_url, credentials, token_endpoint=fake.token_url
    )
    with Session(engine) as session, session.begin():
        integration_id: uuid.UUID = add_integration(session, new, secret_box()).id
    return integration_id


def new_quiz(engine: Engine, title: str = "Fractions") -> uuid.UUID:
    """A quiz, linked to nothing."""
    with engine.begin() as connection:
        quiz_id: uuid.UUID = connection.execute(
            text(
                "INSERT INTO quizzes (title, subject, grade_level) VALUES (:title, 'math', 5)"
                " RETURNING id"
            ),
            {"title": title},
        ).scalar_one()
    return quiz_id


def link_quiz(engine: Engine, external_assignment_ids: list[str]) -> uuid.UUID:
    """A quiz linked to the given LMS assignments (written directly; ``toolbox lms link``
    and ``lms.links.link_assignment`` are tested in ``test_lms_links``)."""
    quiz_id = new_quiz(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE lms_assignments SET toolboxai_quiz_id = :quiz"
                " WHERE external_assignment_id = ANY(:ids)"
            ),
            {"quiz": quiz_id, "ids": external_assignment_ids},
        )
    return quiz_id


def students_of(engine: Engine, external_course_id: str) -> list[tuple[uuid.UUID, str]]:
    """(users.id, LMS user id) of the course's enrolled students, by LMS id."""
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT e.user_id, e.external_user_id FROM lms_enrollments e"
                " JOIN lms_courses c ON c.id = e.lms_course_id"
                " WHERE c.external_course_id = :course AND e.role = 'student'"
                " ORDER BY e.external_user_id"
            ),
            {"course": external_course_id},
        ).all()
    return [(row.user_id, row.external_user_id) for row in rows]


def complete_attempt(
    engine: Engine,
    quiz_id: uuid.UUID,
    user_id: uuid.UUID,
    score: Decimal | int,
    *,
    completed_at: dt.datetime | None = None,
    attempt_number: int = 1,
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """Finish an attempt and record its passbacks in the same transaction, as a service would."""
    with Session(engine) as session, session.begin():
        attempt_id: uuid.UUID = session.execute(
            text(
                "INSERT INTO quiz_attempts (quiz_id, user_id, attempt_number, completed_at, score)"
                " VALUES (:quiz, :user, :n, coalesce(:at, now()), :score) RETURNING id"
            ),
            {
                "quiz": quiz_id,
                "user": user_id,
                "n": attempt_number,
                "at": completed_at,
                "score": Decimal(score),
            },
        ).scalar_one()
        written = record_attempt_completion(session, attempt_id)
    return attempt_id, written


def passback_rows(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(
            connection.execute(text("SELECT * FROM lms_grade_passbacks ORDER BY score_timestamp"))
        )


def make_all_due(engine: Engine, *, leases: bool = False) -> None:
    """Time passes: every backoff (and with ``leases``, every lease) ends now."""
    statuses = ["pending", "sending"] if leases else ["pending"]
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE lms_grade_passbacks SET next_attempt_at = now() - interval '1 second'"
                " WHERE status = ANY(:statuses)"
            ),
            {"statuses": statuses},
        )
