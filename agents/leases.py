"""PostgreSQL advisory locks: the task lease and the agent concurrency slots.

Both are session-level locks held on one dedicated connection for as long as
the task runs.  If the worker process dies, PostgreSQL closes its session and
the locks vanish with it, so a dead worker can never keep a slot or a lease.

- The *lease* (one bigint key per task) proves who is running a task: a
  second delivery of the same message finds it taken and steps aside, and
  the reaper finds a ``running`` row whose lease is free: its worker is dead.
- The *slots* (key pairs ``(agent, n)`` for ``n < max_concurrent_tasks``)
  enforce the agent's limit across every worker.  The two-int and bigint key
  spaces of PostgreSQL advisory locks do not overlap.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError

LOCK_NOT_AVAILABLE = "55P03"


def task_key(task_id: uuid.UUID) -> int:
    return int.from_bytes(task_id.bytes[:8], "big", signed=True)


def agent_key(agent_id: uuid.UUID) -> int:
    return int.from_bytes(agent_id.bytes[:4], "big", signed=True)


def try_lease(connection: Connection, task_id: uuid.UUID) -> bool:
    row = connection.execute(
        text("SELECT pg_try_advisory_lock(:key)"), {"key": task_key(task_id)}
    ).scalar_one()
    return bool(row)


def wait_for_lease(connection: Connection, task_id: uuid.UUID, seconds: float) -> bool:
    """Take the task's lease, waiting up to ``seconds`` for its holder's session to end.

    A pool child killed mid-task (``kill -9``, the OOM killer) keeps its lease
    until PostgreSQL notices that its session is gone, and on a busy machine its
    requeued message can be delivered before that.  For an autocommit
    ``connection``: a timeout fails only the lock statement.
    """
    connection.execute(
        text("SELECT set_config('lock_timeout', :ms, false)"), {"ms": f"{round(seconds * 1000)}"}
    )
    try:
        connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": task_key(task_id)})
    except OperationalError as exc:
        if getattr(exc.orig, "sqlstate", None) != LOCK_NOT_AVAILABLE:
            raise
        return False
    finally:
        connection.execute(text("RESET lock_timeout"))
    return True


def lease_is_free(connection: Connection, task_id: uuid.UUID) -> bool:
    """True when nobody holds the task's lease (checked without keeping it)."""
    key = task_key(task_id)
    if not connection.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar_one():
        return False
    connection.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
    return True


def try_slot(connection: Connection, agent_id: uuid.UUID, slots: int, start: int = 0) -> int | None:
    """Take a free slot of the agent (trying from ``start``); ``None`` when all are held.

    One statement per slot tried: a ``LIMIT`` over a set of lock calls is not
    guaranteed to stop taking locks at the first success.
    """
    agent = agent_key(agent_id)
    for offset in range(slots):
        slot = (start + offset) % slots
        taken = connection.execute(
            text("SELECT pg_try_advisory_lock(:agent, :slot)"), {"agent": agent, "slot": slot}
        ).scalar_one()
        if taken:
            return slot
    return None


def slots_in_use(connection: Connection, agent_id: uuid.UUID) -> int:
    return int(
        connection.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted "
                "AND classid = (:agent)::oid AND objsubid = 2"
            ),
            {"agent": agent_key(agent_id) & 0xFFFFFFFF},
        ).scalar_one()
    )
