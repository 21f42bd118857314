"""One log line, not a traceback, for work that failed because a server is away.

While PostgreSQL or Redis is down, or PostgreSQL refuses writes (a standby
after a failover), every periodic task fails each time it runs and beat fails
each send: the relay alone, every 5 s, logged a traceback of about 30 lines,
and beat about 75 for each scheduled task.  What to fix is the server; the
exception's class and message say which, the traceback nothing more.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
import redis
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy.exc import DBAPIError

#: Connection exceptions (class 08), a server shutting down or starting
#: (57P01-57P03), too many connections, and a read-only transaction.
_AWAY_SQLSTATES = frozenset({"57P01", "57P02", "57P03", "53300"})
READ_ONLY_SQLSTATE = "25006"


def _postgres(error: BaseException | None) -> str | None:
    if not isinstance(error, psycopg.Error):
        return None
    state = error.sqlstate or ""
    if state == READ_ONLY_SQLSTATE:
        return "postgresql refuses writes (read-only)"
    if isinstance(error, psycopg.OperationalError) and (
        not state or state.startswith("08") or state in _AWAY_SQLSTATES
    ):
        return "postgresql unavailable"
    return None


def outage(exc: BaseException) -> str | None:
    """Which server is away when ``exc`` (or an exception it was raised from) says one is."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return "postgresql unavailable"
        found = _postgres(current.orig if isinstance(current, DBAPIError) else current)
        if found:
            return found
        if isinstance(current, redis.ConnectionError | redis.TimeoutError | KombuOperationalError):
            return "redis unavailable"
        current = current.__cause__ or current.__context__
    return None


class OutageFilter(logging.Filter):
    """Cuts a record whose exception is an outage to its first line, with no traceback.

    The JSON line gains ``"outage": "postgresql unavailable"`` (or ``redis``,
    or ``postgresql refuses writes``) for a log search to count them by.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        what = outage(error) if error is not None else None
        if what is None:
            return True
        record.msg, record.args = record.getMessage().splitlines()[0], ()
        record.exc_info, record.exc_text, record.stack_info = None, None, None
        data: Any = getattr(record, "data", None)
        if isinstance(data, dict) and "traceback" in data:  # Celery's task failure context
            record.data = {key: value for key, value in data.items() if key != "traceback"}
        record.outage = what
        return True
