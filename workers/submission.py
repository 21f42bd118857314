"""Writing ``agent_tasks`` rows for ``workers.client``: checks, then the insert.

Two ways in.  ``insert_rows`` runs inside a transaction (the caller's
session, or one of its own) and checks step by step: agent, options,
payloads, parent.  Its rows are ``pending`` until their message is sent and
marked.  ``insert_direct`` is the common case of a service submitting by
agent type on its own: the agent lookup is folded into one INSERT that
commits by itself (two round trips fewer than BEGIN, lookup, INSERT,
COMMIT).  It inserts everything or nothing; whenever it cannot (any check
failing, an idempotency key already used) the caller falls back to
``insert_rows``, which raises the precise error or finds the first task.

Bad input never reaches PostgreSQL as a raw database error: the options
are checked in Python against the columns' limits (``check_options``),
payload strings and keys for NUL characters, which ``jsonb`` refuses
(``validate_input``); an unknown ``created_by`` or parent is found by the
checked path's agent lookup (no extra round trip) and, on the direct path,
by the insert's foreign key, translated into ``NotFound``.  A reused
idempotency key returns the first task only for the same agent and input
(``IdempotencyConflict`` otherwise).  Messages name fields, never values.

``insert_direct`` writes its rows already ``queued`` (``dispatched_at``
set), because their messages leave right after it: the caller sends them
and puts back to ``pending`` only the ones the broker refused
(``dispatch.unmark``), which saves every submit the marking UPDATE.  A
process killed between the commit and the send leaves a queued row without
a message, the same state as a message Redis lost: the relay re-sends it
after ``TOOLBOX_REDISPATCH_AFTER_SECONDS``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.errors import ForeignKeyViolation
from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticSerializationError
from sqlalchemy import Connection, String, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError

from agents.field_paths import (
    NUL,
    NUL_REFUSED,
    ROOT,
    SURROGATE_REFUSED,
    field_errors,
    storage_errors,
    unencodable,
    unserializable_lines,
    unstorable_text,
)
from agents.registry import get_kind
from agents.workflow import ROOT_AGENT
from models.agents import AgentTask
from models.errors import (
    AgentUnavailable,
    ConfigurationError,
    IdempotencyConflict,
    NotFound,
    ValidationFailed,
    listed,
    shown,
)
from models.ids import as_uuid
from workers import dispatch as dispatcher
from workers.celeryconfig import MAX_TIMEOUT_SECONDS
from workers.jobs.retention import MARKER_KEY
from workers.views import unknown_agent_type


@dataclass(frozen=True)
class SubmitOptions:
    priority: int | None = None
    idempotency_key: str | None = None
    parent_task_id: uuid.UUID | None = None
    workflow_id: uuid.UUID | None = None
    created_by: uuid.UUID | None = None
    task_name: str | None = None

    def __post_init__(self) -> None:
        """Ids as ``uuid.UUID``: Python reads spellings PostgreSQL refuses (``urn:uuid:...``)."""
        for field in ("parent_task_id", "workflow_id", "created_by"):
            value = as_uuid(getattr(self, field))
            if value is not None:  # else left as given, for ``_option_errors`` to name
                object.__setattr__(self, field, value)


Inserted = tuple[list[uuid.UUID], list[dispatcher.Envelope]]
"""All task ids in input order, and envelopes for the rows that are new."""


def _column_length(name: str) -> int:
    kind = AgentTask.__table__.c[name].type
    assert isinstance(kind, String) and kind.length is not None
    return kind.length


OPTIONS_REFUSED = "invalid options"
"""How a refusal of the options starts; the lines that follow name each option."""
NONE_HINT = " (pass None for none)"
"""Ends the line of an option given empty: the Python API's way to leave it out."""
IDEMPOTENCY_KEY_MAX = _column_length("idempotency_key")
TASK_NAME_MAX = _column_length("task_name")

_REFERENCES = {
    "fk_agent_tasks_created_by_users": ("created_by", "user"),
    "fk_agent_tasks_parent_task_id_agent_tasks": ("parent_task_id", "agent task"),
}
"""Foreign keys of ``agent_tasks`` a caller's option fills: the option and what it names."""

_INSERT = text(
    "INSERT INTO agent_tasks (id, agent_id, parent_task_id, workflow_id, task_type, task_name,"
    " input_data, status, priority, created_by, idempotency_key)"
    " VALUES (:id, :agent_id, :parent_task_id, :workflow_id, :task_type, :task_name,"
    " :input_data, 'pending', :priority, :created_by, :idempotency_key)"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
).bindparams(bindparam("input_data", type_=JSONB))

_AGENT_ORDER = "ORDER BY is_active DESC, name LIMIT 1"
"""Which ``ai_agents`` row an agent type means: the first active one by name."""

_INSERT_DIRECT = text(
    "WITH agent AS (SELECT id, agent_type, priority, is_active, timeout_seconds FROM ai_agents"
    f" WHERE agent_type = :agent {_AGENT_ORDER}),"
    " inserted AS (INSERT INTO agent_tasks (id, agent_id, workflow_id, task_type, task_name,"
    " input_data, status, dispatched_at, priority, created_by, idempotency_key)"
    " SELECT r.id, a.id, coalesce(CAST(:workflow_id AS uuid), r.id), a.agent_type, :task_name,"
    " r.input_data, 'queued', now(), coalesce(CAST(:priority AS int), a.priority), :created_by,"
    " :idempotency_key FROM agent a, jsonb_to_recordset(:rows) AS r(id uuid, input_data jsonb)"
    " WHERE a.is_active AND a.timeout_seconds <= :max_timeout"
    " ON CONFLICT (idempotency_key) DO NOTHING RETURNING id, priority, workflow_id)"
    " SELECT i.id, i.priority, i.workflow_id, a.timeout_seconds FROM inserted i, agent a"
).bindparams(bindparam("rows", type_=JSONB))


def validate_input(agent_type: str, input_data: Mapping[str, Any] | BaseModel) -> dict[str, Any]:
    """The payload as stored: validated by the kind's schema, JSON-ready, storable by jsonb.

    A model (a caller's, then the schema's) is checked as Python values
    before it is written as JSON: JSON mode turns NaN and infinity into null
    and lone surrogates in keys into U+FFFD, changing the data without a word.
    Error lines name keys as ``agents.field_paths`` shows them, never raw.
    """
    kind = get_kind(agent_type)
    if isinstance(input_data, BaseModel):
        errors = storage_errors(input_data.model_dump())
        raw: Any = None if errors else json_ready(input_data)
    else:
        raw = input_data
        errors = storage_errors(raw)  # first: the schema would name a NUL key, take NaN, recurse
    if not errors:
        try:
            validated = kind.input_schema.model_validate(raw)
        except ValidationError as exc:
            errors = field_errors(exc)
        else:  # the schema may have made strings (of bytes) or floats (of "nan")
            errors = storage_errors(validated.model_dump())
            if not errors:
                payload = json_ready(validated)
                errors = storage_errors(payload)
                if not errors:
                    return payload
    raise ValidationFailed(
        f"invalid input for agent {agent_type!r}: " + listed(errors), errors=errors
    )


def json_ready(model: BaseModel) -> dict[str, Any]:
    """``model`` in JSON mode; a value JSON cannot hold (an object, bytes that are not
    UTF-8) is ``ValidationFailed`` naming where it is, not pydantic's or Python's error."""
    try:
        return model.model_dump(mode="json")
    except (PydanticSerializationError, ValueError) as exc:  # UnicodeDecodeError is one
        lines = unserializable_lines(model.model_dump())
        if not lines:
            lines = [f"{ROOT}: cannot be written as JSON ({type(exc).__name__})"]
        raise ValidationFailed("invalid input: " + listed(lines), errors=lines) from None


def validate_inputs(
    agent_type: str, inputs: Sequence[Mapping[str, Any] | BaseModel]
) -> list[dict[str, Any]]:
    """Every input as stored (``validate_input``); with several, one refusal lists them all.

    Each line names its input, ``inputs[2]: message: Input should be a valid
    string``: the first bad input alone hid the others, and did not say which it was.
    """
    if len(inputs) == 1:
        return [validate_input(agent_type, inputs[0])]
    payloads: list[dict[str, Any]] = []
    errors: list[str] = []
    for index, item in enumerate(inputs):
        try:
            payloads.append(validate_input(agent_type, item))
        except ValidationFailed as exc:
            errors += [f"inputs[{index}]: {line}" for line in exc.errors]
    if errors:
        raise ValidationFailed(
            f"invalid input for agent {agent_type!r}: " + listed(errors), errors=errors
        )
    return payloads


def insert_direct(
    connection: Connection,
    agent: str | uuid.UUID,
    inputs: Sequence[Mapping[str, Any] | BaseModel],
    options: SubmitOptions,
) -> Inserted | None:
    """One self-committing INSERT of ``queued`` rows on an autocommit ``connection``.

    None: nothing was written, use ``insert_rows``.
    """
    agent = agent_ref(agent)
    if isinstance(agent, uuid.UUID) or options.parent_task_id is not None or not inputs:
        return None
    if agent == ROOT_AGENT and options.workflow_id is not None:
        return None
    if _option_errors(options, len(inputs)):
        return None
    try:
        payloads = validate_inputs(agent, inputs)
    except (AgentUnavailable, ValidationFailed):
        return None
    ids = [uuid.uuid4() for _ in payloads]
    try:
        rows = connection.execute(
            _INSERT_DIRECT,
            {
                "agent": agent,
                "rows": [
                    {"id": str(task_id), "input_data": payload}
                    for task_id, payload in zip(ids, payloads, strict=True)
                ],
                "workflow_id": options.workflow_id,
                "task_name": options.task_name or f"{agent} task",
                "priority": options.priority,
                "created_by": options.created_by,
                "idempotency_key": options.idempotency_key,
                "max_timeout": MAX_TIMEOUT_SECONDS,
            },
        ).all()
    except IntegrityError as exc:  # an unknown created_by: the foreign key is the check
        raise _missing_reference(exc, options) from None
    if not rows:  # no usable agent, or the idempotency key is taken: nothing was written
        return None
    by_id = {row.id: row for row in rows}
    envelopes = []
    for task_id in ids:  # in input order, whatever order RETURNING gave
        row = by_id[task_id]
        envelopes.append(
            dispatcher.Envelope(task_id, row.priority, row.timeout_seconds, agent, row.workflow_id)
        )
    return ids, envelopes


def _option_errors(options: SubmitOptions, count: int) -> list[str]:
    """What is wrong with the options of a submit of ``count`` tasks (in Python, no query)."""
    errors: list[str] = []
    priority = options.priority
    if priority is not None:
        if not isinstance(priority, int) or isinstance(priority, bool):
            errors.append("priority: must be an integer between 0 and 9")
        elif not 0 <= priority <= 9:
            errors.append(f"priority: must be between 0 and 9, got {shown(priority)}")
    key = options.idempotency_key
    if key is not None:
        errors.extend(_text_errors("idempotency_key", key, IDEMPOTENCY_KEY_MAX, blank=False))
        if count != 1:
            errors.append("idempotency_key: only for a single task")
    if options.task_name is not None:
        errors.extend(_text_errors("task_name", options.task_name, TASK_NAME_MAX, blank=True))
    for field in ("parent_task_id", "workflow_id", "created_by"):
        value = getattr(options, field)
        if value is not None and as_uuid(value) is None:
            errors.append(f"{field}: not a UUID")
    return errors


def check_options(options: SubmitOptions, count: int = 1) -> None:
    """``ValidationFailed`` listing what ``_option_errors`` finds, if anything."""
    problems = _option_errors(options, count)
    if problems:
        raise ValidationFailed(f"{OPTIONS_REFUSED}: " + "; ".join(problems), errors=problems)


WORKFLOW_OF_ITS_OWN = (
    "a supervisor task starts a workflow of its own, whose id is the task's id; leave it out"
)


def _refuse_grouping(options: SubmitOptions) -> None:
    """A supervisor given a workflow or a parent: it would complete, plan nothing, and
    leave the workflow it was put in ``running`` for good (its children hang off the root)."""
    problems = [
        f"{field}: {WORKFLOW_OF_ITS_OWN}"
        for field in ("workflow_id", "parent_task_id")
        if getattr(options, field) is not None
    ]
    if problems:
        raise ValidationFailed(f"{OPTIONS_REFUSED}: " + "; ".join(problems), errors=problems)


def _text_errors(field: str, value: object, maximum: int, *, blank: bool) -> list[str]:
    """A string option against its column: type, length, NUL; blank allowed or not."""
    if not isinstance(value, str):
        return [f"{field}: must be a string"]
    if not blank and not value.strip():
        return [f"{field}: empty or blank{NONE_HINT}"]
    if len(value) > maximum:
        return [f"{field}: at most {maximum} characters, got {len(value)}"]
    if NUL in value:
        return [f"{field}: {NUL_REFUSED}"]
    if unencodable(value):
        return [f"{field}: {SURROGATE_REFUSED}"]
    return []


def _missing_reference(exc: IntegrityError, options: SubmitOptions) -> Exception:
    """``NotFound`` naming the option whose row does not exist, else ``exc`` itself."""
    orig = exc.orig
    if isinstance(orig, ForeignKeyViolation) and orig.diag.constraint_name in _REFERENCES:
        field, noun = _REFERENCES[orig.diag.constraint_name]
        return NotFound(f"{field}: no {noun} {getattr(options, field)}")
    return exc


def _unknown_agent(connection: Connection, agent: str | uuid.UUID) -> str:
    """The refusal of an agent that is not there, naming the known types as
    ``list_tasks`` does (a typo, ``ecco``, is then plain; an id can be given as a type)."""
    known = list(
        connection.execute(
            text("SELECT DISTINCT agent_type FROM ai_agents ORDER BY agent_type")
        ).scalars()
    )
    if isinstance(agent, uuid.UUID):
        types = f"agent types: {', '.join(known)}" if known else "no agents are registered"
        return f"no agent has id '{agent}'; {types}"
    return unknown_agent_type(agent, known)


def agent_ref(agent: str | uuid.UUID) -> str | uuid.UUID:
    """``agent`` as an ``ai_agents`` id when it is one or spells one, else as given (a type).

    Agent types are words (``echo``): text that spells a UUID is an id, as
    ``get_task`` takes a task id as a ``uuid.UUID`` or its text.
    """
    if isinstance(agent, str):
        return as_uuid(agent) or agent
    return agent


def _agent(
    connection: Connection, agent: str | uuid.UUID, options: SubmitOptions
) -> dict[str, Any]:
    """The agent's row, plus ``creator_known`` and ``parent_workflow`` (None: no such parent).

    The references are looked up in the same statement: no round trip of their own.
    """
    agent = agent_ref(agent)
    if not isinstance(agent, uuid.UUID | str) or (
        isinstance(agent, str) and unstorable_text(agent)
    ):
        raise AgentUnavailable("agent: not an agent type or an ai_agents id")
    column = "id" if isinstance(agent, uuid.UUID) else "agent_type"
    rows = connection.execute(
        text(
            "SELECT id, agent_type, name, priority, is_active, timeout_seconds,"
            " CAST(:created_by AS uuid) IS NULL OR EXISTS"
            " (SELECT FROM users WHERE id = CAST(:created_by AS uuid)) AS creator_known,"
            " (SELECT coalesce(workflow_id, id) FROM agent_tasks"
            " WHERE id = CAST(:parent_task_id AS uuid)) AS parent_workflow"
            f" FROM ai_agents WHERE {column} = :agent {_AGENT_ORDER}"
        ),
        {
            "agent": agent,
            "created_by": options.created_by,
            "parent_task_id": options.parent_task_id,
        },
    ).mappings()
    row = rows.one_or_none()
    if row is None:
        raise AgentUnavailable(_unknown_agent(connection, agent))
    if row["timeout_seconds"] > MAX_TIMEOUT_SECONDS:
        raise ConfigurationError(
            f"agent {row['name']!r} has timeout_seconds {row['timeout_seconds']} above the "
            f"supported maximum {MAX_TIMEOUT_SECONDS} (the broker's visibility timeout)"
        )
    return dict(row)


def insert_rows(
    connection: Connection,
    agent: str | uuid.UUID,
    inputs: Sequence[Mapping[str, Any] | BaseModel],
    options: SubmitOptions,
) -> Inserted:
    """Insert rows inside the connection's transaction, checking each step.

    The options first (in Python, so nothing malformed reaches a query),
    then the agent with the references, then the payloads; nothing is
    written unless all pass.
    """
    priority, idempotency_key = options.priority, options.idempotency_key
    parent_task_id, workflow_id = options.parent_task_id, options.workflow_id
    check_options(options, len(inputs))
    row = _agent(connection, agent, options)
    if row["agent_type"] == ROOT_AGENT:
        _refuse_grouping(options)
    if not row["is_active"]:
        # A request already taken is answered as before its agent was switched off (a
        # retry whose reply was lost); a new one is refused before its input is checked.
        if idempotency_key is None or not _key_taken(connection, idempotency_key):
            raise AgentUnavailable(f"agent {row['agent_type']!r} is inactive")
        payload = validate_inputs(row["agent_type"], inputs)[0]
        return [_first_task(connection, idempotency_key, row["agent_type"], payload)], []
    payloads = validate_inputs(row["agent_type"], inputs)
    if not row["creator_known"]:
        raise NotFound(f"created_by: no user {options.created_by}")
    if parent_task_id is not None:
        if row["parent_workflow"] is None:
            raise NotFound(f"parent_task_id: parent task {parent_task_id} does not exist")
        workflow_id = workflow_id or row["parent_workflow"]
    ids: list[uuid.UUID] = []
    new: list[dispatcher.Envelope] = []
    for payload in payloads:
        task_id = uuid.uuid4()
        values = {
            "id": task_id,
            "agent_id": row["id"],
            "parent_task_id": parent_task_id,
            "workflow_id": workflow_id or task_id,
            "task_type": row["agent_type"],
            "task_name": options.task_name or f"{row['agent_type']} task",
            "input_data": payload,
            "priority": row["priority"] if priority is None else priority,
            "created_by": options.created_by,
            "idempotency_key": idempotency_key,
        }
        try:
            inserted = connection.execute(_INSERT, values).scalar_one_or_none()
        except IntegrityError as exc:  # a user or parent deleted since the lookup
            raise _missing_reference(exc, options) from None
        if inserted is None:
            ids.append(_first_task(connection, idempotency_key, row["agent_type"], payload))
        else:
            ids.append(task_id)
            new.append(
                dispatcher.Envelope(
                    task_id,
                    values["priority"],
                    row["timeout_seconds"],
                    row["agent_type"],
                    values["workflow_id"],
                )
            )
    return ids, new


_FIRST_TASK = text(
    "SELECT id, task_type, input_data = :input_data OR input_data ? :marker AS same_input"
    " FROM agent_tasks WHERE idempotency_key = :key"
).bindparams(bindparam("input_data", type_=JSONB))


def _key_taken(connection: Connection, key: str) -> bool:
    return bool(
        connection.execute(
            text("SELECT EXISTS (SELECT FROM agent_tasks WHERE idempotency_key = :key)"),
            {"key": key},
        ).scalar_one()
    )


def _first_task(
    connection: Connection, key: str | None, agent_type: str, payload: dict[str, Any]
) -> uuid.UUID:
    """The task that already holds ``key``, if it is the same request (agent and input).

    Like Stripe's idempotency keys: a key names one request, so a reuse with
    another agent or another input is a caller's bug, reported rather than
    answered with an unrelated task.  Inputs compare as stored (``jsonb``
    equality, after the schema filled in defaults).  A task whose input
    retention has purged can no longer be compared and is returned.
    """
    found = connection.execute(
        _FIRST_TASK, {"key": key, "input_data": payload, "marker": MARKER_KEY}
    ).one()
    if found.task_type != agent_type:
        raise IdempotencyConflict(
            f"idempotency_key: already used by task {found.id} of agent {found.task_type!r},"
            f" not {agent_type!r}; use a new key for a new request",
            errors=["idempotency_key: used by a task of another agent"],
        )
    if not found.same_input:
        raise IdempotencyConflict(
            f"idempotency_key: already used by task {found.id} with a different input;"
            " a key may be reused only with the same agent and input",
            errors=["idempotency_key: used by a task with a different input"],
        )
    task_id: uuid.UUID = found.id
    return task_id
