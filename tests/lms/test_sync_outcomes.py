"""How a sync ends against fake LMSs and a real PostgreSQL: what stops it, what it marks.

Credentials refused mid-run stop it with one reason (a token renewal that cures the
401 does not); a plain-http address an older version stored is not called; a course
the LMS stopped listing (or Learn disabled) takes its assignments and roster along.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from lms.base import Credentials
from lms.edit import IntegrationChanges, update_integration
from lms.status import integration_detail
from lms.store import NewIntegration, add_integration
from lms.sync import SyncProgress
from models.errors import ValidationFailed
from tests.integration.lms_support import add_canvas, integration_row, sync
from tests.lms.fakes import Dataset, FakeCanvas, FakeMoodle, Fault, Reply
from tests.lms.fakes.blackboard import FakeBlackboard, bb_id
from tests.lms.fakes.canvas import UNAUTHORIZED
from tests.lms.fakes.oneroster import FakeOneRoster
from tests.lms.fakes.server import path_matcher
from workers.secrets import secret_box

REVOKED = Reply.json(
    {"errors": [{"message": "Invalid access token."}]},
    401,
    {"WWW-Authenticate": 'Bearer realm="canvas-lms"'},
)


SCHOOL = {"courses": 3, "students_per_course": 4, "assignments_per_course": 2}


@pytest.fixture
def canvas() -> Iterator[FakeCanvas]:
    with FakeCanvas(Dataset.generate(**SCHOOL)) as server:
        yield server


@pytest.fixture
def canvas_id(engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas) -> uuid.UUID:
    return add_canvas(engine, canvas.base_url, canvas.token)


def add(engine: Engine, platform: str, base_url: str, **fields: Any) -> uuid.UUID:
    new = NewIntegration(platform, "Shelbyville", base_url, **fields)
    with Session(engine) as session, session.begin():
        integration_id: uuid.UUID = add_integration(session, new, secret_box()).id
    return integration_id


def data_held(engine: Engine, integration_id: uuid.UUID) -> dict[str, int]:
    with engine.connect() as connection:
        return integration_detail(connection, integration_id).data


# credentials refused ------------------------------------------------------------------------


def test_a_token_revoked_mid_sync_stops_the_run_at_once_with_one_reason(
    engine: Engine, canvas: FakeCanvas, canvas_id: uuid.UUID, caplog: pytest.LogCaptureFixture
) -> None:
    """Every course failed alone, 33 warnings, and ``33 of 33 course(s) failed: ...`` cut at
    2,000 characters."""
    canvas.inject(Fault(times=1000, reply=REVOKED, match=path_matcher("/api/v1/courses/", None)))
    with caplog.at_level(logging.WARNING, logger="lms.sync"):
        report = sync(engine, canvas_id)

    assert report.status == "failed" and report.errors == []
    assert report.message is not None and report.reason == report.message
    assert report.message.startswith("credentials refused: GET ")
    assert report.message.endswith("was rejected with HTTP 401: Invalid access token.")
    assert len(canvas.requests_to("/api/v1/courses/")) == 1  # no second course asked
    assert integration_row(engine, canvas_id).sync_error_message == report.message
    assert [r.getMessage() for r in caplog.records if r.name == "lms.sync"] == []


def test_a_course_closed_to_a_valid_token_fails_alone(
    engine: Engine, canvas: FakeCanvas, canvas_id: uuid.UUID
) -> None:
    """Canvas's 401 "user not authorized" (no ``WWW-Authenticate``) refuses one course."""
    closed = next(iter(canvas.data.courses))
    refusal = Reply.json(UNAUTHORIZED, 401)
    canvas.inject(Fault(times=10, reply=refusal, match=path_matcher(f"/api/v1/courses/{closed}/",
                                                                    None)))  # fmt: skip
    report = sync(engine, canvas_id)

    assert (report.status, report.courses_failed, report.courses_listed) == ("partial", 1, 3)
    assert report.errors[0].startswith(f"course {closed}: GET ")


def test_a_token_renewal_that_cures_a_401_mid_sync_keeps_the_run_going(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """OneRoster's token stops working after the first course: renewed once, no course fails."""
    with FakeOneRoster(Dataset.generate(**SCHOOL), page_size=2) as oneroster:
        integration = add(
            engine, "oneroster", oneroster.base_url,
            credentials=Credentials(client_id=oneroster.client_id,
                                    client_secret=oneroster.client_secret),
            token_endpoint=oneroster.token_url,
        )  # fmt: skip

        def expire_after_the_first(step: SyncProgress) -> None:
            if step.done == 1:
                oneroster.expire_all_tokens()

        report = sync(engine, integration, progress=expire_after_the_first)

        assert (report.status, report.courses_failed) == ("success", 0), report.message
        assert oneroster.unauthorized == 1 and len(oneroster.token_requests()) == 2


# plain http --------------------------------------------------------------------------------


def test_a_stored_plain_http_address_is_neither_called_nor_kept_by_an_update(
    engine: Engine, canvas: FakeCanvas, canvas_id: uuid.UUID
) -> None:
    """An older version took ``http://`` for any host: the token would cross unencrypted."""
    with engine.begin() as connection:
        connection.execute(
            text("UPDATE lms_integrations SET base_url = 'http://canvas.example.org'")
        )
    report = sync(engine, canvas_id)

    assert report.status == "failed"
    assert report.message == (
        "the stored base URL (--base-url) must use https: plain http would send the credentials"
        " unencrypted (it is taken only for a loopback host: 127.0.0.0/8, ::1, localhost); give"
        f" https://canvas.example.org, with `toolbox lms update {canvas_id} --base-url` (an"
        " older version took it; the LMS is not called until then)"
    )
    assert integration_row(engine, canvas_id).last_sync_status == "failed"
    with Session(engine) as session, session.begin(), pytest.raises(ValidationFailed) as caught:
        update_integration(session, canvas_id, IntegrationChanges(sync_frequency_hours=6),
                           secret_box())  # fmt: skip
    assert caught.value.message.startswith("the stored base URL (--base-url) must use https:")
    assert caught.value.message.endswith("replace it with --base-url")
    with Session(engine) as session, session.begin():
        assert update_integration(session, canvas_id, IntegrationChanges(
            base_url=canvas.base_url), secret_box())  # fmt: skip
    assert sync(engine, canvas_id).status == "success"


# a course deleted upstream -------------------------------------------------------------------


@pytest.fixture(params=["canvas", "moodle"])
def lms_server(request: pytest.FixtureRequest) -> Iterator[FakeCanvas | FakeMoodle]:
    kind = FakeCanvas if request.param == "canvas" else FakeMoodle
    with kind(Dataset.generate(**SCHOOL)) as server:
        yield server


def test_a_course_deleted_upstream_takes_its_roster_and_assignments_along(
    engine: Engine, toolbox_env: dict[str, str], lms_server: FakeCanvas | FakeMoodle
) -> None:
    """Its 7 enrollments stayed active and its 2 assignments unmarked, and ``lms status``
    counted them."""
    integration = add(engine, lms_server.name.removeprefix("fake-"), lms_server.base_url,
                      credentials=Credentials(api_key=lms_server.token))  # fmt: skip
    assert sync(engine, integration).status == "success"
    before = data_held(engine, integration)
    gone_id = next(iter(lms_server.data.courses))
    gone = lms_server.data.courses.pop(gone_id)  # 404 under it from now on

    assert sync(engine, integration).courses_removed == 1

    assert live_rows(engine, gone_id) == (0, 0)
    assert marked_rows(engine, gone_id) == (2, 5)
    held = data_held(engine, integration)
    assert (held["courses"], held["courses_deleted"]) == (2, 1)
    assert (held["assignments"], held["enrollments"]) == (4, 10)
    assert held["enrollments_dropped"] == before["enrollments_dropped"] + 5

    lms_server.data.courses[gone_id] = gone
    assert sync(engine, integration).status == "success"
    assert live_rows(engine, gone_id) == (2, 5)
    assert data_held(engine, integration) == before


def test_a_course_marked_before_its_rows_went_along_is_counted_without_them_and_mended(
    engine: Engine, canvas: FakeCanvas, canvas_id: uuid.UUID
) -> None:
    """A database synced by an older version: the next sync marks the rows the course left."""
    assert sync(engine, canvas_id).status == "success"
    gone_id = next(iter(canvas.data.courses))
    del canvas.data.courses[gone_id]
    with engine.begin() as connection:  # as the older version marked it: the course alone
        connection.execute(text("UPDATE lms_courses SET deleted_at = now()"
                                " WHERE external_course_id = :c"), {"c": gone_id})  # fmt: skip
    held = data_held(engine, canvas_id)
    assert (held["assignments"], held["enrollments"]) == (4, 10)

    assert sync(engine, canvas_id).courses_removed == 0
    assert live_rows(engine, gone_id) == (0, 0)


def test_a_course_disabled_in_learn_goes_as_a_deleted_one_does(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """Learn's ``Disabled`` (the SIS locked the course, hidden from its users) was synced as a
    live course, its roster enrolled; private (``No``) and ``Term`` courses stay courses."""
    with FakeBlackboard(Dataset.generate(**SCHOOL)) as learn:
        hidden, term, private = list(learn.data.courses)
        learn.availability.update({hidden: "Disabled", term: "Term", private: "No"})
        integration = add(engine, "blackboard", learn.base_url, credentials=Credentials(
            client_id=learn.app_key, client_secret=learn.app_secret))  # fmt: skip
        first = sync(engine, integration)
        assert (first.status, first.courses_listed) == ("success", 2), first.message
        assert [r.path for r in learn.requests if f"/courses/{bb_id(hidden)}/" in r.path] == []
        assert data_held(engine, integration)["courses"] == 2
        assert live_rows(engine, bb_id(term)) == (2, 5)

        learn.availability[term] = "Disabled"  # after the first sync
        second = sync(engine, integration)
        assert (second.status, second.courses_listed, second.courses_removed) == ("success", 1, 1)
        assert live_rows(engine, bb_id(term)) == (0, 0)
        assert marked_rows(engine, bb_id(term)) == (2, 5)
        held = data_held(engine, integration)
        assert (held["courses"], held["courses_deleted"]) == (1, 1)

        learn.availability[term] = "Yes"
        assert sync(engine, integration).status == "success"
        assert live_rows(engine, bb_id(term)) == (2, 5)


def live_rows(engine: Engine, external_course_id: str) -> tuple[int, int]:
    """(assignments, enrollments) of the course that are not marked."""
    return _rows(engine, external_course_id, "a.deleted_at IS NULL",
                 "e.enrollment_state <> 'dropped'")  # fmt: skip


def marked_rows(engine: Engine, external_course_id: str) -> tuple[int, int]:
    """(assignments, enrollments) of the course marked gone, with when."""
    return _rows(engine, external_course_id, "a.deleted_at IS NOT NULL",
                 "e.enrollment_state = 'dropped' AND e.dropped_at IS NOT NULL")  # fmt: skip


def _rows(engine: Engine, course: str, assignment: str, enrollment: str) -> tuple[int, int]:
    with engine.connect() as connection:
        counted = connection.execute(
            text(
                "SELECT (SELECT count(*) FROM lms_assignments a WHERE a.lms_course_id = c.id"
                f"         AND {assignment}),"
                " (SELECT count(*) FROM lms_enrollments e WHERE e.lms_course_id = c.id"
                f"         AND {enrollment})"
                " FROM lms_courses c WHERE c.external_course_id = :course"
            ),
            {"course": course},
        ).one()
    return int(counted[0]), int(counted[1])


# malformed on the wire ---------------------------------------------------------------------


def test_a_course_whose_answer_does_not_decode_fails_alone(
    engine: Engine, canvas: FakeCanvas, canvas_id: uuid.UUID
) -> None:
    """A corrupt gzip raised httpx's ``DecodingError`` out of ``run_sync``: the run was
    recorded ``interrupted (DecodingError)`` and the courses after it never read."""
    broken = next(iter(canvas.data.courses))
    corrupt = Reply(200, b"\x1f\x8b\x08\x00garbage-not-gzip", {"Content-Encoding": "gzip"})
    canvas.inject(Fault(times=10, reply=corrupt, match=path_matcher(f"/api/v1/courses/{broken}/",
                                                                    None)))  # fmt: skip
    report = sync(engine, canvas_id)

    assert (report.status, report.courses_failed, report.courses_listed) == ("partial", 1, 3)
    assert report.errors[0].startswith(f"course {broken}: GET ")
    assert "does not decode as its Content-Encoding 'gzip' says" in report.errors[0]
    assert integration_row(engine, canvas_id).last_sync_status == "partial"
