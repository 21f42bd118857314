"""Bad input to the enqueue API: a ``ValidationFailed`` or ``NotFound`` naming the field.

Never a raw database error, never the payload's or the key's text in the
message, and no row written, whichever way the submit goes: the direct
path (``submit``, ``submit_many``, ``submit_and_report``), the checked path
and the caller's transaction (``session=``).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Callable
from pathlib import Path
from random import Random
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from agents.offline_lesson import lesson_content
from agents.schemas import EnvironmentRequest, ReviewInput
from models.errors import (
    AgentUnavailable,
    IdempotencyConflict,
    NotFound,
    ToolboxError,
    ValidationFailed,
    WaitTimeout,
)
from tests.integration.test_cli import toolbox
from workers import client, workflows
from workers.db import get_engine

SECRET = "pupil-record-1234"
"""Payload text that must never show up in an error."""

Submit = Callable[..., uuid.UUID]


def _submit(agent: Any, data: Any, **options: Any) -> uuid.UUID:
    return client.submit(agent, data, **options)


def _submit_many(agent: Any, data: Any, **options: Any) -> uuid.UUID:
    return client.submit_many(agent, [{"message": "fine"}, data], **options)[1]


def _submit_and_report(agent: Any, data: Any, **options: Any) -> uuid.UUID:
    return client.submit_and_report(agent, data, **options).task_id


def _in_session(agent: Any, data: Any, **options: Any) -> uuid.UUID:
    """In the caller's transaction, which the refusal must leave usable."""
    with Session(get_engine()) as session, session.begin():
        try:
            return client.submit(agent, data, session=session, **options)
        finally:
            assert session.execute(text("SELECT 1")).scalar_one() == 1


WAYS = pytest.mark.parametrize(
    "submit",
    [_submit, _submit_many, _submit_and_report, _in_session],
    ids=["submit", "submit_many", "submit_and_report", "session"],
)
ONE_TASK_WAYS = pytest.mark.parametrize(
    "submit",
    [_submit, _submit_and_report, _in_session],
    ids=["submit", "submit_and_report", "session"],
)


def task_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM agent_tasks")).scalar_one())


def refused(error: type[ToolboxError], call: Callable[[], object], *hidden: str) -> str:
    """``call`` raises ``error`` (not a database error); its message hides ``hidden``."""
    with pytest.raises(error) as caught:
        call()
    message = str(caught.value)
    for text_ in hidden:
        assert text_ not in message, message
    assert "[SQL" not in message and "psycopg" not in message
    return message


def add_user(engine: Engine) -> uuid.UUID:
    user_id = uuid.uuid4()
    with engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO users (id, username, email, password_hash, role)"
                " VALUES (:id, 'ms-rivera', 'rivera@school.example', '-', 'teacher')"
            ),
            {"id": user_id},
        )
    return user_id


# 1. NUL characters, which jsonb refuses ---------------------------------------------------


@WAYS
def test_a_nul_in_a_payload_string_names_its_path(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    message = refused(
        ValidationFailed, lambda: submit("echo", {"message": f"{SECRET}\x00tail"}), SECRET, "tail"
    )
    assert "input.message: contains a NUL character" in message
    assert task_count(engine) == 0


def _review_with(game_mechanics: Any) -> dict[str, Any]:
    request = EnvironmentRequest(subject="science", grade_level=6, topic="volcanoes")
    content = lesson_content(request, Random(1)).model_dump(mode="json")
    content["game_mechanics"] = game_mechanics
    return {"request": request.model_dump(mode="json"), "content": content}


def test_nul_in_nested_strings_and_in_keys_is_found_on_every_path(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    request = EnvironmentRequest(subject="science", grade_level=6, topic="volcanoes")
    bad_request = request.model_dump(mode="json") | {
        "learning_objectives": ["Explain eruptions", f"{SECRET}\x00"]
    }
    message = refused(ValidationFailed, lambda: workflows.generate(bad_request), SECRET)
    assert "input.learning_objectives.1: contains a NUL character" in message
    review = _review_with({f"{SECRET}\x00": 1, "levels": [{"name": "ok"}, "x\x00"]})
    message = refused(ValidationFailed, lambda: client.submit("review", review), SECRET)
    assert "input.content.game_mechanics (a key): contains a NUL" in message
    assert "input.content.game_mechanics.levels.1: contains a NUL" in message
    assert task_count(engine) == 0


def test_a_nan_or_infinite_number_is_named_by_its_path_before_the_schema_takes_it(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """The schema passed NaN in a free-form object (and as a float field's value, said
    ``less than or equal to 600``); jsonb then refused the INSERT."""
    review = _review_with({"levels": [{"bonus": float("inf")}], "rate": float("nan")})
    message = refused(ValidationFailed, lambda: client.submit("review", review))
    assert message.endswith(
        "input.content.game_mechanics.levels.0.bonus: is NaN or infinite, which JSON cannot"
        " hold; give a number; input.content.game_mechanics.rate: is NaN or infinite, which"
        " JSON cannot hold; give a number"
    )
    message = refused(ValidationFailed, lambda: client.submit("echo", {"phase_seconds": -1e999}))
    assert message.endswith("input.phase_seconds: is NaN or infinite, which JSON cannot hold;"
                            " give a number")  # fmt: skip
    assert task_count(engine) == 0


def test_a_lone_surrogate_in_a_free_form_object_is_refused_by_its_path(
    engine: Engine, toolbox_env: dict[str, str], tmp_path: Path
) -> None:
    """PostgreSQL refused a value (its error, a 95-line traceback, quoted the payload)
    and JSON mode turned a key's surrogate into U+FFFD, storing changed data."""
    review = _review_with({"token": f"{SECRET}-\ud800", "tok\udc80en": "x"})
    message = refused(ValidationFailed, lambda: client.submit("review", review), SECRET)
    assert "input.content.game_mechanics.token: is not valid Unicode" in message
    assert "input.content.game_mechanics (a key): is not valid Unicode" in message
    path = tmp_path / "review.json"
    path.write_text(json.dumps(review))  # written as the escapes \ud800 and \udc80
    result = toolbox("task", "submit", "review", "--input", f"@{path}", env=toolbox_env)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: invalid input for agent 'review': ")
    assert "input.content.game_mechanics.token: is not valid Unicode" in result.stderr
    assert SECRET not in result.stderr and "Traceback" not in result.stderr
    assert task_count(engine) == 0


def test_a_model_input_is_checked_before_json_mode_changes_it(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """A pydantic model with NaN in a free-form field was stored with null in its place."""
    review = ReviewInput.model_validate(_review_with({"speed": math.nan, "big": math.inf}))
    message = refused(ValidationFailed, lambda: client.submit("review", review))
    assert "input.content.game_mechanics.speed: is NaN or infinite" in message
    assert "input.content.game_mechanics.big: is NaN or infinite" in message
    assert task_count(engine) == 0


def test_a_value_json_cannot_write_is_a_validation_failure(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """Bytes that are not UTF-8 and plain objects raised UnicodeDecodeError and pydantic's
    PydanticSerializationError, not a ToolboxError."""
    review = _review_with({"raw": b"\xff", "ok": b"fine", "thing": [object()]})
    for given in (review, ReviewInput.model_validate(review)):
        message = refused(ValidationFailed, lambda given=given: client.submit("review", given))
        assert message.endswith(
            "input.content.game_mechanics.raw: cannot be written as JSON (a bytes value that is"
            " not UTF-8 text); give text, numbers, true/false, lists or objects;"
            " input.content.game_mechanics.thing.0: cannot be written as JSON (a value of type"
            " object); give text, numbers, true/false, lists or objects"
        )
    assert task_count(engine) == 0


@pytest.mark.parametrize("option", ["workflow_id", "parent_task_id"])
def test_a_supervisor_refuses_a_workflow_or_a_parent(
    engine: Engine, toolbox_env: dict[str, str], option: str
) -> None:
    """Put in another workflow, a supervisor completed, planned nothing and left that
    workflow running for good."""
    parent = client.submit("echo", {})
    request = {"subject": "science", "grade_level": 6, "topic": "volcanoes"}
    for submit in (_submit, _in_session):
        message = refused(
            ValidationFailed,
            lambda submit=submit: submit("supervisor", request, **{option: parent}),
        )
        assert message == (
            f"invalid options: {option}: a supervisor task starts a workflow of its own, whose"
            " id is the task's id; leave it out"
        )
    assert task_count(engine) == 1


def test_an_agent_name_with_a_nul_is_an_unknown_agent(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    refused(AgentUnavailable, lambda: client.submit("ec\x00ho", {}))
    assert task_count(engine) == 0


# 2. and 4. idempotency keys and task names against their columns --------------------------


@WAYS
def test_string_options_are_checked_against_their_columns(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    long_key = "k" * 200 + SECRET + "k" * 40  # 257 characters
    message = refused(
        ValidationFailed, lambda: submit("echo", {}, idempotency_key=long_key), SECRET
    )
    assert "idempotency_key: at most 255 characters, got 257" in message
    for blank in ("", "   "):
        message = refused(
            ValidationFailed, lambda key=blank: submit("echo", {}, idempotency_key=key)
        )
        assert "idempotency_key: empty or blank" in message
    refused(ValidationFailed, lambda: submit("echo", {}, idempotency_key=f"{SECRET}\x00"), SECRET)
    message = refused(ValidationFailed, lambda: submit("echo", {}, task_name="n" * 201))
    assert "task_name: at most 200 characters, got 201" in message
    refused(ValidationFailed, lambda: submit("echo", {}, task_name=f"{SECRET}\x00"), SECRET)
    message = refused(ValidationFailed, lambda: submit("echo", {}, priority="5"))
    assert "priority: must be an integer" in message
    assert task_count(engine) == 0
    if submit is not _submit_many:  # a key is for a single task
        assert submit("echo", {}, idempotency_key="k" * 255, task_name="n" * 200)
        assert task_count(engine) == 1


def test_the_cli_refuses_a_long_key_in_one_line_without_it(toolbox_env: dict[str, str]) -> None:
    long_key = SECRET * 20
    result = toolbox(
        "task", "submit", "echo", "--idempotency-key", long_key, env=toolbox_env
    )  # fmt: skip
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (
        "error: toolbox task submit: --idempotency-key: at most 255 characters,"
        f" got {len(long_key)}"
    )


# 3. a key names one request ----------------------------------------------------------------


@ONE_TASK_WAYS
def test_a_key_of_another_agent_or_input_is_a_conflict(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    first = client.submit("echo", {"message": SECRET}, idempotency_key="lesson-42")
    request = {"subject": "science", "grade_level": 6, "topic": "volcanoes"}
    message = refused(
        IdempotencyConflict,
        lambda: submit("supervisor", request, idempotency_key="lesson-42"),
        SECRET,
        "lesson-42",
    )
    assert f"already used by task {first} of agent 'echo', not 'supervisor'" in message
    message = refused(
        IdempotencyConflict,
        lambda: submit("echo", {"message": "other"}, idempotency_key="lesson-42"),
        SECRET,
        "lesson-42",
    )
    assert f"already used by task {first} with a different input" in message
    assert task_count(engine) == 1
    same = {"message": SECRET, "phase_seconds": 0}  # the defaults spelled out: the same input
    assert submit("echo", same, idempotency_key="lesson-42") == first
    with engine.begin() as connection:  # retention purged the input: nothing left to compare
        connection.execute(
            text(
                "UPDATE agent_tasks SET input_data = jsonb_build_object('_retention',"
                " jsonb_build_object('purged_at', now())) WHERE id = :id"
            ),
            {"id": first},
        )
    assert submit("echo", {"message": "other"}, idempotency_key="lesson-42") == first
    assert task_count(engine) == 1


def test_a_workflow_with_a_key_of_an_echo_task_is_refused(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    client.submit("echo", {}, idempotency_key="req-7")
    request = {"subject": "science", "grade_level": 6, "topic": "volcanoes"}
    with pytest.raises(IdempotencyConflict, match="of agent 'echo', not 'supervisor'"):
        workflows.generate(request, idempotency_key="req-7")
    with pytest.raises(IdempotencyConflict):
        workflows.generate_and_report(request, idempotency_key="req-7")
    first = workflows.generate(request, idempotency_key="req-8")
    assert workflows.generate(request, idempotency_key="req-8") == first


# 5. references: created_by, parent_task_id, malformed ids ---------------------------------


@WAYS
def test_an_unknown_user_or_parent_is_not_found(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    stranger = uuid.uuid4()
    message = refused(NotFound, lambda: submit("echo", {}, created_by=stranger))
    assert message == f"created_by: no user {stranger}"
    orphan = uuid.uuid4()
    message = refused(
        NotFound, lambda: submit("echo", {}, parent_task_id=orphan, workflow_id=uuid.uuid4())
    )
    assert message == f"parent_task_id: parent task {orphan} does not exist"
    for field in ("created_by", "parent_task_id", "workflow_id"):
        message = refused(ValidationFailed, lambda name=field: submit("echo", {}, **{name: "nope"}))
        assert f"{field}: not a UUID" in message
    assert task_count(engine) == 0
    user = add_user(engine)
    parent = client.submit("echo", {})
    assert submit("echo", {}, created_by=str(user), parent_task_id=parent)
    assert task_count(engine) == (3 if submit is _submit_many else 2)


@WAYS
def test_ids_in_any_spelling_python_reads_are_taken(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    """``urn:uuid:...`` (which ``uuid.UUID`` reads and PostgreSQL does not) is the id itself."""
    user, parent, group = add_user(engine), client.submit("echo", {}), uuid.uuid4()
    task_id = submit("echo", {}, created_by=f"urn:uuid:{user}", workflow_id=f"urn:uuid:{group}")
    assert client.get_task(task_id).workflow_id == group
    child = submit("echo", {}, parent_task_id=f"urn:uuid:{parent}", created_by=f"{{{user}}}")
    assert client.get_task(child).workflow_id == parent
    stranger = uuid.uuid4()
    message = refused(NotFound, lambda: submit("echo", {}, created_by=f"urn:uuid:{stranger}"))
    assert message == f"created_by: no user {stranger}"


# 6. and 7. reading: ids and list filters -------------------------------------------------


def test_an_id_that_is_no_uuid_is_refused_before_any_query(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    for call in (client.get_task, client.wait, client.cancel, workflows.get, workflows.wait):
        message = refused(ValidationFailed, lambda call=call: call("not-a-uuid"), "not-a-uuid")
        assert message.endswith("id (a UUID)")
    task_id = client.submit("echo", {})
    assert client.get_task(str(task_id)).id == task_id
    with pytest.raises(NotFound, match="no agent task"):
        client.get_task(uuid.uuid4())


def test_an_unknown_agent_type_names_the_known_ones(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """``toolbox task submit ecco`` said only "unknown agent 'ecco'"; a new user could not
    tell the agent types, which ``task list --agent`` already lists."""
    known = "content, echo, quiz, review, script, supervisor, terrain"
    message = refused(AgentUnavailable, lambda: client.submit("ecco", {}))
    assert message == f"unknown agent 'ecco'; known: {known}"
    with Session(engine) as session:  # the checked way, in the caller's transaction
        message = refused(AgentUnavailable, lambda: client.submit("ecco", {}, session=session))
        assert message == f"unknown agent 'ecco'; known: {known}"
        assert session.execute(text("SELECT 1")).scalar() == 1  # still usable
    long = refused(AgentUnavailable, lambda: client.submit("x" * 60, {}))
    assert long == f"unknown agent '{'x' * 50}'...; known: {known}"
    missing = uuid.uuid4()
    assert refused(AgentUnavailable, lambda: client.submit(missing, {})) == (
        f"no agent has id '{missing}'; agent types: {known}"
    )
    result = toolbox("task", "submit", "ecco", env=toolbox_env)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: unknown agent 'ecco'; known: {known}"


@ONE_TASK_WAYS
def test_an_agent_id_given_as_text_is_the_agent(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    """``submit(str(agent_id), ...)`` was looked up as an agent *type* and refused as
    ``unknown agent '<the id>'``, while the ``uuid.UUID`` worked: the README's
    ``agent_type_or_id`` takes an id as ``get_task`` does, a ``uuid.UUID`` or its text."""
    with engine.connect() as connection:
        echo_id = connection.execute(
            text("SELECT id FROM ai_agents WHERE agent_type = 'echo'")
        ).scalar_one()
    task_id = submit(str(echo_id), {"message": "by id"})
    assert client.get_task(task_id).agent_type == "echo"
    missing = uuid.uuid4()
    assert refused(AgentUnavailable, lambda: submit(str(missing), {})) == (
        f"no agent has id '{missing}'; agent types: content, echo, quiz, review, script,"
        " supervisor, terrain"
    )
    assert task_count(engine) == 1


def test_a_session_that_is_no_orm_session_is_refused_naming_the_argument(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """``session=connection`` failed deep inside with ``TypeError: '_ConnectionFairy'
    object is not callable`` (an Engine: ``AttributeError``): a Core user could not tell
    that only an ORM ``Session`` can send the message after its commit."""
    with engine.begin() as connection:
        for call in (
            lambda: client.submit("echo", {}, session=connection),
            lambda: client.submit_many("echo", [{}], session=connection),
            lambda: workflows.generate(
                EnvironmentRequest(subject="science", grade_level=6, topic="volcanoes"),
                session=connection,
            ),
        ):
            message = refused(ValidationFailed, call)
            assert message.startswith("session: not an ORM Session (a Connection)"), message
        assert connection.execute(text("SELECT 1")).scalar_one() == 1  # still usable
    message = refused(ValidationFailed, lambda: client.submit("echo", {}, session=engine))
    assert message.startswith("session: not an ORM Session (an Engine)"), message
    assert task_count(engine) == 0


@ONE_TASK_WAYS
def test_a_repeated_request_returns_its_task_after_the_agent_was_deactivated(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    """A service retrying a submit that had gone through (its reply lost) got
    ``AgentUnavailable: agent 'echo-agent' is inactive`` once the agent was switched
    off meanwhile, though its task exists: the key names a request already taken."""
    first = client.submit("echo", {"message": "once"}, idempotency_key="req-inactive")
    with engine.begin() as connection:
        connection.execute(text("UPDATE ai_agents SET is_active = false WHERE agent_type = 'echo'"))
    assert submit("echo", {"message": "once"}, idempotency_key="req-inactive") == first
    refused(
        IdempotencyConflict,
        lambda: submit("echo", {"message": "other"}, idempotency_key="req-inactive"),
    )
    message = refused(AgentUnavailable, lambda: submit("echo", {}, idempotency_key="req-new"))
    assert message == "agent 'echo' is inactive"  # the type asked for, not the row's name
    assert refused(AgentUnavailable, lambda: submit("echo", {})) == message
    assert task_count(engine) == 1


def test_submit_many_lists_the_bad_fields_of_every_input_by_its_index(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """It reported the first bad input's fields alone, and not which input that was."""
    inputs = [{"message": 1}, {"message": "fine"}, {"message": "x", "bogus": 2}]
    with pytest.raises(ValidationFailed) as caught:
        client.submit_many("echo", inputs)
    assert caught.value.errors == [
        "inputs[0]: message: Input should be a valid string",
        "inputs[2]: bogus: Extra inputs are not permitted",
    ]
    assert str(caught.value).startswith("invalid input for agent 'echo': inputs[0]: message:")
    assert task_count(engine) == 0


def test_submit_many_takes_any_iterable_and_refuses_a_single_input(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """A generator failed with ``TypeError: object of type 'generator' has no len()``
    from inside; one dict given by mistake was iterated as its keys and refused as
    ``input: Input should be a valid dictionary ...``, though a dictionary was given."""
    generated = client.submit_many("echo", ({"message": m} for m in ("a", "b")))
    assert [client.get_task(task_id).agent_type for task_id in generated] == ["echo", "echo"]
    with Session(engine) as session, session.begin():
        assert len(client.submit_many("echo", iter([{}]), session=session)) == 1
    for single, kind in (({"message": "x"}, "a dict"), ("text", "a str"), (None, "a NoneType")):
        message = refused(
            ValidationFailed, lambda single=single: client.submit_many("echo", single)
        )
        assert message.startswith(f"inputs: a list of inputs, not {kind}"), message
    assert task_count(engine) == 3


def test_list_tasks_checks_its_filters_as_the_cli_does(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    client.submit("echo", {})
    for limit in (-1, 0, 1001, True, "5"):
        message = refused(ValidationFailed, lambda limit=limit: client.list_tasks(limit=limit))
        assert message.startswith("limit: must be")
    message = refused(ValidationFailed, lambda: client.list_tasks(status="bogus"))
    assert message.startswith("unknown status 'bogus'; valid: pending, queued, running")
    message = refused(ValidationFailed, lambda: client.list_tasks(status="s" * 60))
    assert message.startswith(f"unknown status '{'s' * 50}'...; valid: pending")
    message = refused(ValidationFailed, lambda: client.list_tasks(status=5))  # type: ignore[arg-type]
    assert message.startswith("unknown status of type int; valid: pending")
    message = refused(ValidationFailed, lambda: client.list_tasks(agent_type="a" * 60))
    assert message.startswith(f"unknown agent '{'a' * 50}'...; known: ")
    message = refused(ValidationFailed, lambda: client.list_tasks(agent_type="painter"))
    assert message.startswith("unknown agent 'painter'; known: ") and "echo" in message
    refused(ValidationFailed, lambda: client.list_tasks(agent_type="ec\x00ho"))
    message = refused(ValidationFailed, lambda: client.list_tasks(workflow_id="nope"))
    assert message == "workflow_id: not a workflow id (a UUID)"
    assert [view.status for view in client.list_tasks(status="QUEUED", agent_type="echo")] == [
        "queued"
    ]
    assert client.list_tasks(agent_type="quiz") == []  # a known agent without tasks
    assert len(client.list_tasks(limit=1000)) == 1


UNDECODABLE = "\udcff"
"""What Python makes of a byte that is not UTF-8 in ``sys.argv``: a lone surrogate."""


@WAYS
def test_text_that_is_not_valid_unicode_is_refused_by_name(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    """A lone surrogate reached psycopg and came back as a raw ``UnicodeEncodeError``."""
    for option in ("idempotency_key", "task_name"):
        message = refused(
            ValidationFailed, lambda name=option: submit("echo", {}, **{name: f"k{UNDECODABLE}"})
        )
        assert f"{option}: is not valid Unicode" in message
    refused(AgentUnavailable, lambda: submit(f"echo{UNDECODABLE}", {}))
    assert task_count(engine) == 0


def test_the_cli_refuses_undecodable_bytes_in_one_line(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    for args in (
        ("task", "submit", "echo", "--idempotency-key", UNDECODABLE),
        ("task", "submit", UNDECODABLE),
        ("task", "list", "--agent", UNDECODABLE),
    ):
        result = toolbox(*args, env=toolbox_env)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("error: "), result.stderr
    with pytest.raises(ValidationFailed, match="unknown agent"):
        client.list_tasks(agent_type=UNDECODABLE)
    assert task_count(engine) == 0


def test_wait_refuses_a_timeout_or_poll_that_is_no_number_of_seconds(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """A NaN timeout waited for ever; text or None raised a raw ``TypeError``."""
    task_id = client.submit("echo", {})  # no worker runs: it stays queued
    group = uuid.uuid4()
    for wait, some_id in ((client.wait, task_id), (workflows.wait, group)):
        for bad in (math.nan, -1, "5", None, True):
            message = refused(ValidationFailed, lambda w=wait, t=bad, i=some_id: w(i, t))
            assert message.startswith("timeout: must be a number of seconds, 0 or more"), message
        for bad in (-1, 0, math.nan, math.inf, "0.1"):
            message = refused(ValidationFailed, lambda w=wait, p=bad, i=some_id: w(i, 1, poll=p))
            assert message.startswith("poll: must be a number of seconds above 0"), message
    with pytest.raises(WaitTimeout, match="still queued after 0s"):
        client.wait(task_id, 0)
    with pytest.raises(WaitTimeout, match=r"still queued after 0s \("):  # not "-0s"
        client.wait(task_id, -0.0)


def test_numbers_too_big_to_print_or_convert_are_refused_or_read_by_name(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """``priority=10**5000`` and ``list_tasks(limit=10**5000)`` raised Python's own
    ``ValueError`` (an int of more than 4,300 digits cannot be printed) and
    ``wait(timeout=10**400)`` an ``OverflowError`` (no such float)."""
    huge = 10**5000
    assert refused(ValidationFailed, lambda: client.submit("echo", {}, priority=huge)) == (
        "invalid options: priority: must be between 0 and 9, got a number of about 5001 digits"
    )
    assert refused(ValidationFailed, lambda: client.list_tasks(limit=huge)) == (
        "limit: must be from 1 to 1000, got a number of about 5001 digits"
    )
    assert task_count(engine) == 0
    task_id = client.submit("echo", {})
    client.cancel(task_id)  # finished: a wait without limit returns at once
    assert client.wait(task_id, 10**400).status == "cancelled"
    # a list does not load states: None, not an empty list that reads as "no states"
    assert client.list_tasks(limit=1)[0].states is None
    assert client.get_task(task_id).states == []
    message = refused(ValidationFailed, lambda: client.wait(task_id, 1, poll=10**400))
    assert message == "poll: must be a number of seconds above 0, got a number of about 401 digits"


def _nested(levels: int) -> dict[str, Any]:
    outer: dict[str, Any] = {}
    inner = outer
    for _ in range(levels):
        inner["a"] = {}
        inner = inner["a"]
    return outer


@WAYS
def test_a_payload_nested_too_deeply_is_refused_by_name(
    engine: Engine, toolbox_env: dict[str, str], submit: Submit
) -> None:
    """Every check walks the payload one call per level: a raw ``RecursionError``."""
    for data in ({"message": "x", **_nested(5000)}, {"message": _nested(5000)}):
        message = refused(ValidationFailed, lambda d=data: submit("echo", d))
        assert "input: arrays or objects nested more than 100 levels deep" in message
    # a firm limit, not Python's recursion limit: 101 levels (the payload, then 100 objects)
    # are refused, 100 reach the schema (which wants a string there)
    message = refused(ValidationFailed, lambda: submit("echo", {"message": _nested(99)}))
    assert message.endswith("input: arrays or objects nested more than 100 levels deep; nest fewer")
    message = refused(ValidationFailed, lambda: submit("echo", {"message": _nested(98)}))
    assert message.endswith("message: Input should be a valid string"), message
    assert task_count(engine) == 0


def test_the_cli_refuses_json_nested_too_deeply_in_one_line(
    engine: Engine, toolbox_env: dict[str, str], tmp_path: Any
) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"message": "x", "a": ' + "[" * 100_000 + "]" * 100_000 + "}")
    result = toolbox("task", "submit", "echo", "--input", f"@{deep}", env=toolbox_env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == (
        f"error: toolbox task submit: --input @{deep}: not valid JSON: arrays or objects"
        " nested more than 100 levels deep; nest fewer"
    )
    assert task_count(engine) == 0


def test_a_refusal_lists_twenty_problems_and_keeps_them_all(
    engine: Engine, toolbox_env: dict[str, str]
) -> None:
    """2,000 unknown keys made a 77 KB error line (``submit_many`` of 5,000 bad inputs, 274 KB)."""
    with pytest.raises(ValidationFailed) as caught:
        client.submit("echo", {f"key{index}": 1 for index in range(2000)})
    assert len(caught.value.errors) == 2000
    assert caught.value.message.endswith("; and 1980 more problems")
    assert caught.value.message.count("Extra inputs are not permitted") == 20
    with pytest.raises(ValidationFailed) as many:
        client.submit_many("echo", [{"message": 5}] * 5000)
    assert len(many.value.errors) == 5000 and len(many.value.message) < 2000
    assert task_count(engine) == 0
