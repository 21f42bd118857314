"""One line for the failures a user can fix: PostgreSQL or Redis unreachable, no schema.

``main()`` asks ``explain`` about any exception a command let through; the
library (``workers.client``, ``workers.workflows``) keeps raising SQLAlchemy's
and redis-py's own exceptions.  Lines name host and port, never a password.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import redis
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import make_url
from sqlalchemy.exc import DBAPIError

from workers.settings import ENV_PREFIX, get_settings

#: ``agent_tasks`` missing (no schema) or a column missing (an older schema).
SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})


def explain(exc: BaseException, *, embedded_database: bool) -> str | None:
    """The line to print for ``exc``, or None when it is not a known setup problem."""
    if isinstance(exc, DBAPIError) and isinstance(exc.orig, psycopg.Error):
        if _connection_failed(exc):
            lost = exc.statement is not None or exc.connection_invalidated
            return _unreachable_postgres(exc.orig, embedded_database, lost=lost)
        if exc.orig.sqlstate in SCHEMA_SQLSTATES:
            return _no_schema(exc.orig, embedded_database)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | KombuOperationalError):
        return redis_unreachable(_reason(str(exc)))
    return None


def _connection_failed(exc: DBAPIError) -> bool:
    """Connecting failed, or the connection broke: not an error a statement caused.

    A failed connect is a plain psycopg ``OperationalError`` without a SQLSTATE
    (or one of class 08) and without a statement; a COMMIT that fails for
    other reasons has no statement either, but another class.
    """
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    if type(orig) is not psycopg.OperationalError or exc.statement is not None:
        return False
    return orig.sqlstate is None or orig.sqlstate.startswith("08")


def postgres_target(url: str | None = None) -> str:
    """``host:port`` (or the socket folder) of the database URL, without credentials."""
    try:
        parsed = make_url(url or get_settings().database_url or "")
    except Exception:
        return "the configured address"
    host = parsed.host or str(parsed.query.get("host") or "")
    if not host or host.startswith("/"):
        return f"socket {host or '(default)'}"
    return f"{host}:{parsed.port or 5432}"


def redis_unreachable(reason: str | None = None) -> str:
    because = f" ({reason})" if reason else ""
    return f"cannot connect to Redis at {redis_target()}{because}; check {ENV_PREFIX}REDIS_URL"


def redis_target() -> str:
    url = get_settings().redis_url or ""
    parts = urlsplit(url)
    if parts.scheme == "redis+socket":
        return f"socket {parts.path}"
    try:
        return f"{parts.hostname}:{parts.port or 6379}"
    except ValueError:  # a port that is not a number
        return str(parts.hostname)


def _reason(message: str) -> str:
    first = message.strip().splitlines()[0] if message.strip() else "unknown error"
    lowered = first.lower()
    if "resolve host" in lowered or "name or service not known" in lowered:
        return "host not found"
    if "timeout" in lowered or "timed out" in lowered:
        return "timed out"
    if "connection refused" in lowered:
        return "connection refused"
    reason = first.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    if reason == "No such file or directory":
        return "no server listening on that socket"
    return _scrub(reason[:1].lower() + reason[1:])[:160]


def _scrub(text: str) -> str:
    """Drop anything that looks like a URL password, and the configured one."""
    text = re.sub(r"(://[^:/@\s]*:)[^@\s]*@", r"\1****@", text)
    settings = get_settings()
    for url in (settings.database_url, settings.redis_url):
        password = urlsplit(url or "").password
        if password:
            text = text.replace(password, "****")
    return text


def _unreachable_postgres(error: psycopg.Error, embedded: bool, *, lost: bool) -> str:
    verb = "lost the connection to" if lost else "cannot connect to"
    where = postgres_target()
    hint = (
        f"the embedded server of {_data_dir()} did not answer; run the command again"
        if embedded
        else f"check {ENV_PREFIX}DATABASE_URL"
    )
    return f"{verb} PostgreSQL at {where} ({_reason(str(error))}); {hint}"


def _no_schema(error: psycopg.Error, embedded: bool) -> str:
    missing = _scrub(str(error).strip().splitlines()[0]) if str(error).strip() else "a table"
    state, advice = _schema_state()
    if embedded:
        where = f"the embedded database in {_data_dir()}"
        advice += (
            f"; embedded servers live in {ENV_PREFIX}DATA_DIR (default ./.toolbox, relative "
            "to the current folder): are you in your project's folder?"
        )
    else:
        name = make_url(get_settings().database_url or "").database
        where = f"the database {name} at {postgres_target()}"
    return f"{where} {state} ({missing}): {advice}"


def _schema_state() -> tuple[str, str]:
    """What Alembic says: no schema yet, an older revision, or (unexpected) the newest."""
    migrate_hint = "run `toolbox migrate` (or `toolbox up`)"
    try:
        from workers import migrate

        url = get_settings().database_url or ""
        current, head = migrate.current_revision(url), migrate.head_revision()
    except Exception:
        return "has no schema or an outdated one", migrate_hint
    if current is None:
        return "has no schema yet", migrate_hint
    if current != head:
        return f"has an outdated schema (revision {current}, this code needs {head})", migrate_hint
    return "does not match the code at its newest revision", "see `toolbox db check`"


def _data_dir() -> Path:
    return get_settings().data_dir.resolve()
