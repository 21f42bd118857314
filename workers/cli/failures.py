"""One line for the failures a user can fix: PostgreSQL or Redis unreachable, no schema,
a read-only database.

A Redis that answers but refuses ``TOOLBOX_REDIS_URL``'s settings (a
database number out of range, a wrong password) is a setting to fix, not
an outage, and is worded so (``workers.redis.refused_message``).

``main()`` asks ``explain`` about any exception a command let through; the
library (``workers.client``, ``workers.workflows``) keeps raising SQLAlchemy's
and redis-py's own exceptions.  ``check_servers`` asks both servers up front
(``toolbox up``), and ``not_sent`` words a broker's refusal that a submit
survived.  Lines name host and port, never a password.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit

import psycopg
import redis
import typer
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import create_engine, make_url, pool
from sqlalchemy.exc import DBAPIError

from models.errors import ConfigurationError
from models.redaction import MASK, redact
from workers.outages import READ_ONLY_SQLSTATE
from workers.redis import client_url, refusal, refused_message
from workers.settings import ENV_PREFIX, get_settings, url_passwords

#: ``agent_tasks`` missing (no schema) or a column missing (an older schema).
SCHEMA_SQLSTATES = frozenset({"42P01", "42703"})
#: Seconds ``check_servers`` gives each server to answer (a firewall drops, never refuses).
CHECK_TIMEOUT_SECONDS = 5
EXIT_STATUS = 2
"""Of every refusal of the command line: click's exit status for a usage error."""


def fail(message: str) -> NoReturn:
    """Print ``message`` as the README's one red ``error: ...`` line and exit with status 2."""
    say_error(message)
    sys.exit(EXIT_STATUS)


def say_error(message: str) -> None:
    """The red ``error: ...`` line on stderr, without exiting (``fail`` exits)."""
    typer.secho(f"error: {message}", fg="red", err=True)


def explain(exc: BaseException, *, embedded_database: bool) -> str | None:
    """The line to print for ``exc``, or None when it is not a known setup problem."""
    if isinstance(exc, DBAPIError) and isinstance(exc.orig, psycopg.Error):
        if _connection_failed(exc):
            lost = exc.statement is not None or exc.connection_invalidated
            return _unreachable_postgres(exc.orig, embedded_database, lost=lost)
        if exc.orig.sqlstate in SCHEMA_SQLSTATES:
            return _no_schema(exc.orig, embedded_database)
        if exc.orig.sqlstate == READ_ONLY_SQLSTATE:
            return _read_only(exc.orig)
    refused = refusal(exc) if isinstance(exc, redis.RedisError | KombuOperationalError) else None
    if refused is not None:
        return refused_message(refused)
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | KombuOperationalError):
        return redis_unreachable(_reason(str(exc)))
    return None


def check_servers(database_url: str, redis_url: str, *, embedded_database: bool) -> None:
    """``ConfigurationError`` naming each server that does not answer, in one line.

    For ``toolbox up``, before it migrates or starts a process: Celery would
    retry an unreachable broker forever, and the stack would look started.
    An error that is not about reaching a server (a bug) goes through as is.
    """
    found = (_postgres_problem(database_url, embedded_database), _redis_problem(redis_url))
    problems = [problem for problem in found if problem is not None]
    if problems:
        raise ConfigurationError(", and ".join(problems))


def check_broker(redis_url: str) -> None:
    """``ConfigurationError`` if Redis does not answer: for Flower, which needs nothing else."""
    problem = _redis_problem(redis_url)
    if problem is not None:
        raise ConfigurationError(problem)


def _postgres_problem(url: str, embedded: bool) -> str | None:
    engine = create_engine(
        url, poolclass=pool.NullPool, connect_args={"connect_timeout": CHECK_TIMEOUT_SECONDS}
    )
    try:
        with engine.connect():
            return None
    except DBAPIError as exc:
        problem = explain(exc, embedded_database=embedded)
        if problem is None:
            raise
        return problem
    finally:
        engine.dispose()


def _redis_problem(url: str) -> str | None:
    client: redis.Redis[bytes] = redis.Redis.from_url(
        client_url(url),
        socket_connect_timeout=CHECK_TIMEOUT_SECONDS,
        socket_timeout=CHECK_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    except redis.RedisError as exc:  # refused, timed out, wrong password, not a Redis at all
        refused = refusal(exc)
        return redis_unreachable(_reason(str(exc))) if refused is None else refused_message(refused)
    finally:
        client.close()
    return None


def not_sent(noun: str, task_id: uuid.UUID, error: BaseException, *, waiting: float | None) -> str:
    """The note for a submit the broker refused: the row is saved, the relay sends it later."""
    then = f"; waiting up to {waiting:g}s" if waiting is not None else ""
    answer = _redis_answer(error)
    problem = (
        redis_unreachable(_reason(str(error)))
        if answer is None
        else redis_answered(_reason(_PIPELINE_PREFIX.sub("", str(answer))))
    )
    return (
        f"{problem}. {noun.capitalize()} {task_id} is saved "
        "(pending); the relay (beat, as in toolbox up) will dispatch it once the broker is "
        f"back{then}"
    )


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


_PIPELINE_PREFIX = re.compile(r"^command # \d+ \(.*?\) of pipeline caused error: ", re.I)
"""How redis-py prefixes the error of a command sent in a pipeline, as kombu sends."""


def _redis_answer(error: BaseException | None) -> redis.ResponseError | None:
    """The error Redis answered with, when it was reached (``error`` or its cause)."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, redis.ResponseError):
            return error
        error = error.__cause__ or error.__context__
    return None


def redis_answered(reason: str) -> str:
    """Redis was reached and refused the message (full memory, read-only replica, ...)."""
    hint = (
        "free memory or raise its maxmemory"
        if "maxmemory" in reason.lower() or reason.lower().startswith("oom")
        else "check the Redis server's log"
    )
    return f"Redis at {redis_target()} refused the message ({reason}); {hint}"


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
    """``text`` with every URL's secrets masked, and the configured passwords wherever they are.

    A server's message may quote the password without its URL.
    """
    text = redact(text)
    settings = get_settings()
    for url in filter(None, (settings.database_url, settings.redis_url)):
        for password in {*url_passwords(url), urlsplit(url).password}:  # decoded, as written
            if password:
                text = text.replace(password, MASK)
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


def _read_only(error: psycopg.Error) -> str:
    """A database that answers but refuses every write: nothing a retry will change."""
    why = _scrub(str(error).strip().splitlines()[0]) if str(error).strip() else "read-only"
    name = make_url(get_settings().database_url or "").database
    return (
        f"the database {name} at {postgres_target()} refuses writes ({why}): it is read-only"
        " (a standby, or default_transaction_read_only is on); point "
        f"{ENV_PREFIX}DATABASE_URL at a writable primary"
    )


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
