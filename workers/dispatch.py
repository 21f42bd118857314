"""Send agent-task messages for committed rows, and mark them dispatched.

A row is the truth; the message is only a wake-up call.  If the broker is
down the rows stay (or, written ``queued`` by ``submit``'s direct path, go
back to) ``pending`` with ``dispatched_at`` NULL and the relay
(``toolbox.maintenance.relay``) sends them later.  Sending twice is
harmless: the worker's claim lets one delivery run.  A Redis that refuses
the broker URL's settings (``workers.redis.refusal``) is no outage: a
submit on its own ``discard``s the rows it has just written and says so
(``workers.client``).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from kombu.exceptions import OperationalError as KombuOperationalError
from redis.exceptions import RedisError
from sqlalchemy import Connection, text

from workers.celeryconfig import AGENT_QUEUE, HARD_LIMIT_GRACE_SECONDS, broker_priority
from workers.redis import refusal

log = logging.getLogger(__name__)
AGENT_TASK = "toolbox.agent.run"
BROKER_ERRORS = (KombuOperationalError, RedisError, OSError)


@dataclass(frozen=True)
class Envelope:
    """What a message needs: the id plus the agent's limits and priority."""

    task_id: uuid.UUID
    priority: int
    timeout_seconds: int
    agent_type: str
    workflow_id: uuid.UUID

    def argsrepr(self) -> str:
        """What Flower shows as the arguments: ids and the agent kind, never the payload."""
        parts = [f"task_id={self.task_id}", f"agent={self.agent_type}"]
        if self.workflow_id != self.task_id:
            parts.append(f"workflow={self.workflow_id}")
        return " ".join(parts)


_ENVELOPES = (
    "SELECT t.id, t.priority, a.timeout_seconds, a.agent_type,"
    " coalesce(t.workflow_id, t.id) AS workflow_id FROM agent_tasks t"
    " JOIN ai_agents a ON a.id = t.agent_id WHERE t.id = ANY(:ids)"
)


def envelopes(connection: Connection, ids: Sequence[uuid.UUID]) -> list[Envelope]:
    rows = connection.execute(
        text(f"{_ENVELOPES} ORDER BY t.priority DESC, t.created_at"), {"ids": list(ids)}
    ).all()
    return [
        Envelope(row.id, row.priority, row.timeout_seconds, row.agent_type, row.workflow_id)
        for row in rows
    ]


@dataclass(frozen=True)
class Published:
    """What ``publish`` sent, and the broker error that stopped it (None: all went out)."""

    sent: list[uuid.UUID]
    error: Exception | None = None


def publish(batch: Sequence[Envelope], *, raises_refusal: bool = False) -> Published:
    """Publish messages; stop at the first broker error and say what was sent and why not.

    ``raises_refusal``: the caller raises ``ConfigurationError`` for a broker that
    refuses its settings before any message went out, so that is not logged as
    left for the relay.
    """
    from workers.app import app

    sent: list[uuid.UUID] = []
    if not batch:
        return Published(sent)
    try:
        with app.producer_or_acquire() as producer:
            for envelope in batch:
                app.send_task(
                    AGENT_TASK,
                    args=[str(envelope.task_id)],
                    argsrepr=envelope.argsrepr(),
                    kwargsrepr="{}",
                    headers={"workflow_id": str(envelope.workflow_id)},
                    task_id=str(envelope.task_id),
                    queue=AGENT_QUEUE,
                    routing_key=AGENT_QUEUE,
                    priority=broker_priority(envelope.priority),
                    soft_time_limit=envelope.timeout_seconds,
                    time_limit=envelope.timeout_seconds + HARD_LIMIT_GRACE_SECONDS,
                    producer=producer,
                )
                sent.append(envelope.task_id)
    except BROKER_ERRORS as exc:
        refused = refusal(exc) is not None
        if refused and raises_refusal and not sent:
            return Published(sent, exc)
        log.warning(
            "broker %s after %d of %d messages (%s); the relay will send the rest%s",
            "refuses its settings" if refused else "unavailable",
            len(sent),
            len(batch),
            type(exc).__name__,
            " once TOOLBOX_REDIS_URL is fixed" if refused else "",
        )
        return Published(sent, exc)
    return Published(sent)


def send(batch: Sequence[Envelope]) -> list[uuid.UUID]:
    """Publish messages; stop at the first broker error and return what was sent."""
    return publish(batch).sent


_MARK = (
    "UPDATE agent_tasks SET dispatched_at = now(),"
    " status = CASE WHEN status = 'pending' THEN 'queued' ELSE status END"
)


_UNCLAIMED = " AND status IN ('pending', 'queued')"


def mark_dispatched(
    connection: Connection, ids: Sequence[uuid.UUID], *, flush: bool = True, fresh: bool = False
) -> None:
    """Record that messages went out.

    ``flush=False`` (for an autocommit connection: the statement is its own
    transaction) commits without waiting for the WAL flush; losing the mark
    to a database crash only makes the relay send those messages again,
    which the claim makes harmless.

    ``fresh``: rows just written, whose first message this is.  A worker may
    have taken that message before the mark lands, run the task and left it
    ``retrying`` with a retry the broker refused (``dispatched_at`` NULL, the
    relay's cue); the mark leaves such a row alone, or the retry would wait
    for the lost-message sweep instead of its backoff.
    """
    if not ids:
        return
    relaxed = "" if flush else " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS r"
    guard = _UNCLAIMED if fresh else ""
    connection.execute(text(f"{_MARK}{relaxed} WHERE id = ANY(:ids){guard}"), {"ids": list(ids)})


_UNMARK = (
    "UPDATE agent_tasks SET dispatched_at = NULL, status = 'pending'"
    " WHERE id = ANY(:ids) AND status = 'queued'"
)


def unmark(connection: Connection, ids: Sequence[uuid.UUID]) -> None:
    """Put rows written ``queued`` whose message the broker refused back to ``pending``.

    The relay sends them once the broker is back (rows that moved on meanwhile are left alone).
    """
    if ids:
        connection.execute(text(_UNMARK), {"ids": list(ids)})


_RETRY_UNSENT = (
    "UPDATE agent_tasks SET dispatched_at = NULL,"
    " status = CASE WHEN status = 'queued' THEN 'pending' ELSE status END"
    " WHERE id = :id AND status IN ('retrying', 'queued') RETURNING id"
)


def retry_unsent(connection: Connection, task_id: uuid.UUID) -> bool:
    """Record that a row's retry message did not go out (the broker was down).

    Its ``dispatched_at`` goes back to NULL: a ``retrying`` row is sent by the
    relay as soon as its ``not_before`` has passed
    (``agents.recovery.retries_unsent``), and a ``queued`` one (waiting for a
    concurrency slot) goes back to ``pending``, which the relay sends at once,
    rather than 300 s later as a lost message.  False if the row moved on
    meanwhile (a duplicate claimed it).
    """
    row = connection.execute(text(_RETRY_UNSENT), {"id": task_id})
    return row.scalar_one_or_none() is not None


_DISCARD = "DELETE FROM agent_tasks WHERE id = ANY(:ids) AND status IN ('pending', 'queued')"


def discard(connection: Connection, ids: Sequence[uuid.UUID]) -> None:
    """Remove rows just written whose submit fails: a broker that refuses its settings, or
    a send that failed with an error no broker raises.

    The rows were never sent nor returned to anyone; rows that moved on are left alone.
    """
    if ids:
        connection.execute(text(_DISCARD), {"ids": list(ids)})


def dispatch(
    connection: Connection, ids: Sequence[uuid.UUID], *, fresh: bool = False
) -> list[uuid.UUID]:
    """Send messages for committed rows ``ids`` and record it; returns the ids sent.

    ``fresh``: the rows were just written (``mark_dispatched``).
    """
    sent = send(envelopes(connection, ids))
    mark_dispatched(connection, sent, fresh=fresh)
    return sent
