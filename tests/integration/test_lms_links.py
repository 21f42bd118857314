"""Linking LMS assignments to quizzes: ``toolbox lms assignments | link | unlink`` and
``lms.links``, the one way grade passback learns which quiz's scores an assignment takes."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal
from functools import partial
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from lms.drain import drain
from lms.links import assignment_links, link_assignment, unlink_assignment
from lms.registry import make_client
from models.errors import NotFound, ValidationFailed
from tests.integration.lms_support import (
    add_canvas,
    complete_attempt,
    new_quiz,
    passback_rows,
    students_of,
    sync,
)
from tests.integration.test_cli_errors import one_error_line
from tests.integration.test_lms_cli import toolbox
from tests.lms.fakes import Dataset, FakeCanvas
from workers.secrets import secret_box


@pytest.fixture
def integration(engine: Engine, toolbox_env: dict[str, str], canvas: FakeCanvas) -> uuid.UUID:
    """A Canvas integration, synced once: its assignments are known."""
    integration_id = add_canvas(engine, canvas.base_url, canvas.token)
    assert sync(engine, integration_id).status == "success"
    return integration_id


def lms(*args: str, env: dict[str, str]) -> Any:
    """``toolbox lms ARGS --json``'s output, the command having succeeded."""
    done = toolbox("lms", *args, "--json", env=env)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_link_sends_the_scores_of_attempts_completed_from_then_on(
    engine: Engine,
    toolbox_env: dict[str, str],
    integration: uuid.UUID,
    canvas: FakeCanvas,
    data: Dataset,
    course: str,
    assignment: str,
) -> None:
    """The README's grade passback, followed as written: the link was the missing step."""
    quiz = new_quiz(engine, "Fractions")
    (early, _), (student, lms_user), (late, _) = students_of(engine, course)
    assert complete_attempt(engine, quiz, early, 70)[1] == [], "no link yet: no grade"

    listed = lms("assignments", str(integration)[:8], env=toolbox_env)
    assert len(listed) == 4 and all(row["quiz_id"] is None for row in listed)
    assert {row["external_id"] for row in listed} == set(data.assignments)

    linked = lms("link", str(integration), "--assignment", assignment,
                 "--quiz", str(quiz)[:8], env=toolbox_env)  # fmt: skip
    assert linked["assignment"]["quiz_id"] == str(quiz)
    assert linked["assignment"]["quiz_title"] == "Fractions"
    assert (linked["changed"], linked["previous_quiz_id"]) == (True, None)
    assert (linked["unsent_attempts"], linked["passback_enabled"]) == (1, True)

    again = toolbox("lms", "link", str(integration), "--assignment", assignment,
                    "--quiz", str(quiz), env=toolbox_env)  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith(f"assignment {assignment!r} (")
    assert f"was already linked to quiz {quiz} ('Fractions'); nothing changed" in again.stdout

    _, written = complete_attempt(engine, quiz, student, Decimal("87.5"))
    assert len(written) == 1
    assert drain(engine, secrets=secret_box,
                 client_factory=partial(make_client, sleep=lambda _: None)).sent == 1  # fmt: skip
    held = data.grade(assignment, lms_user)
    assert held is not None and held.score == Decimal("87.5") * 10 / 100  # 10 points possible

    (only,) = lms("assignments", str(integration), "--linked", env=toolbox_env)
    assert (only["external_id"], only["quiz_id"]) == (assignment, str(quiz))

    unlinked = toolbox("lms", "unlink", str(integration), "--assignment", assignment,
                       env=toolbox_env)  # fmt: skip
    assert unlinked.returncode == 0, unlinked.stderr
    assert f"from quiz {quiz}: no further grades are written for it" in unlinked.stdout
    assert complete_attempt(engine, quiz, late, 50)[1] == []
    assert lms("assignments", str(integration), "--linked", env=toolbox_env) == []
    twice = toolbox("lms", "unlink", str(integration), "--assignment", assignment, env=toolbox_env)
    assert twice.returncode == 0 and "was linked to no quiz; nothing changed" in twice.stdout


def test_link_refusals_name_what_is_missing(
    engine: Engine, toolbox_env: dict[str, str], integration: uuid.UUID, assignment: str
) -> None:
    quiz = new_quiz(engine)
    unknown = uuid.uuid4()

    def refused(*args: str) -> str:
        return one_error_line(toolbox("lms", *args, env=toolbox_env))

    ours = str(integration)
    assert refused("link", ours, "--assignment", assignment, "--quiz", str(unknown)) == (
        f"error: no quiz {unknown}"
    )
    assert refused("link", ours, "--assignment", assignment, "--quiz", "ffff0000") == (
        "error: no quiz id starts with 'ffff0000'"
    )
    assert refused("link", ours, "--assignment", "404", "--quiz", str(quiz)) == (
        f"error: LMS integration {integration} has no assignment '404' (assignments come from"
        f" its syncs; `toolbox lms assignments {integration}` lists them)"
    )
    assert refused("link", ours, "--assignment", assignment, "--quiz", str(quiz),
                   "--course", "404") == (
        f"error: LMS integration {integration} has no assignment {assignment!r} in course"
        f" '404' (assignments come from its syncs; `toolbox lms assignments {integration}`"
        " lists them)"
    )  # fmt: skip
    assert refused("unlink", ours, "--assignment", "404").startswith(
        f"error: LMS integration {integration} has no assignment '404'"
    )
    assert refused("link", str(unknown), "--assignment", assignment, "--quiz", str(quiz)) == (
        f"error: no LMS integration {unknown}"
    )
    assert refused("link", ours, "--assignment", assignment) == (
        "error: toolbox lms link: missing option --quiz"
    )
    assert passback_rows(engine) == []
    with engine.connect() as connection:
        assert assignment_links(connection, integration, linked_only=True) == []


def test_an_assignment_id_in_two_courses_needs_its_course(
    engine: Engine,
    toolbox_env: dict[str, str],
    integration: uuid.UUID,
    data: Dataset,
    course: str,
    assignment: str,
) -> None:
    """Assignment ids are unique per course only (``lms_assignments``' key)."""
    other = list(data.courses)[1]
    with engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE lms_assignments SET external_assignment_id = :id WHERE lms_course_id ="
                " (SELECT id FROM lms_courses WHERE external_course_id = :other)"
                " AND external_assignment_id = :first"
            ),
            {"id": assignment, "other": other, "first": data.course_assignments(other)[0].id},
        )
    quiz = new_quiz(engine)
    args = ("link", str(integration), "--assignment", assignment, "--quiz", str(quiz))

    line = one_error_line(toolbox("lms", *args, env=toolbox_env))
    assert line == (
        f"error: toolbox lms link: --course: assignment {assignment!r} is in 2 courses of LMS"
        f" integration {integration} ({course!r}, {other!r}): name its course"
    )
    linked = lms(*args, "--course", other, env=toolbox_env)
    assert linked["assignment"]["course_external_id"] == other
    (only,) = lms("assignments", str(integration), "--linked", env=toolbox_env)
    assert only["course_external_id"] == other


def test_an_assignment_the_lms_dropped_is_not_linked_but_may_be_unlinked(
    engine: Engine,
    toolbox_env: dict[str, str],
    integration: uuid.UUID,
    canvas: FakeCanvas,
    data: Dataset,
    course: str,
    assignment: str,
) -> None:
    quiz = new_quiz(engine)
    with engine.begin() as connection:
        link_assignment(connection, integration, assignment, quiz)
    data.assignments.pop(assignment)
    data.course_assignments(course).pop(0)
    assert sync(engine, integration).assignments.removed == 1

    (shown,) = lms("assignments", str(integration), "--linked", env=toolbox_env)
    assert (shown["external_id"], shown["deleted"]) == (assignment, True)
    line = one_error_line(toolbox("lms", "link", str(integration), "--assignment", assignment,
                                  "--quiz", str(quiz), env=toolbox_env))  # fmt: skip
    assert line == (
        f"error: toolbox lms link: --assignment: assignment {assignment!r} of course {course!r}"
        " is marked deleted: the LMS no longer lists it (or its course), so no grade would be"
        " sent to it"
    )
    assert lms("unlink", str(integration), "--assignment", assignment, env=toolbox_env)["changed"]
    assert lms("assignments", str(integration), "--linked", env=toolbox_env) == []


def test_relinking_to_another_quiz_replaces_the_link_and_passback_off_is_said(
    engine: Engine, toolbox_env: dict[str, str], integration: uuid.UUID, course: str,
    assignment: str,
) -> None:  # fmt: skip
    first, second = new_quiz(engine, "First"), new_quiz(engine, "Second")
    (student, _), *_ = students_of(engine, course)
    with engine.begin() as connection:
        link_assignment(connection, integration, assignment, first)
    complete_attempt(engine, first, student, 60)
    with engine.begin() as connection:
        connection.execute(text("UPDATE lms_integrations SET grade_passback_enabled = false"))

    replaced = toolbox("lms", "link", str(integration), "--assignment", assignment,
                       "--quiz", str(second), env=toolbox_env)  # fmt: skip
    assert replaced.returncode == 0, replaced.stderr
    assert f"to quiz {second} ('Second'): the scores of attempts" in replaced.stdout
    assert (
        f"it was linked to quiz {first}; the 1 grade(s) recorded for it before are still sent"
        in replaced.stdout
    )
    assert replaced.stderr == (
        f"warning: grade passback is off for integration {integration}: no grade is sent until"
        f" toolbox lms update {integration} --grade-passback\n"
    )
    with engine.connect() as connection:
        (now,) = assignment_links(connection, integration, linked_only=True)
    assert (now.quiz_id, now.quiz_title) == (second, "Second")


def test_services_link_in_their_own_transaction(
    engine: Engine, integration: uuid.UUID, course: str, assignment: str
) -> None:
    quiz = new_quiz(engine)
    with Session(engine) as session:
        change = link_assignment(session.connection(), integration, assignment, quiz)
        assert change.changed and change.assignment.quiz_id == quiz
        session.rollback()
    with engine.begin() as connection:
        assert assignment_links(connection, integration, linked_only=True) == []
        assert link_assignment(connection, integration, assignment, str(quiz)).changed  # type: ignore[arg-type]
        again = link_assignment(connection, integration, assignment, quiz)
        assert not again.changed and again.previous_quiz_id == quiz
        (listed,) = assignment_links(connection, integration, course_external_id=course,
                                     linked_only=True)  # fmt: skip
        assert listed == again.assignment
    with engine.begin() as connection, pytest.raises(ValidationFailed) as caught:
        link_assignment(connection, integration, assignment, "not-a-quiz")  # type: ignore[arg-type]
    assert caught.value.message == "quiz_id: not a quiz id (a UUID)"
    with engine.begin() as connection, pytest.raises(ValidationFailed) as caught:
        unlink_assignment(connection, integration, " ", course_external_id=course)
    assert caught.value.errors == ["external_assignment_id: empty"]
    with engine.begin() as connection, pytest.raises(NotFound) as missing:
        link_assignment(connection, uuid.UUID(int=1), assignment, quiz)
    assert missing.value.message == f"no LMS integration {uuid.UUID(int=1)}"
    with engine.begin() as connection:
        assert unlink_assignment(connection, integration, assignment).changed
