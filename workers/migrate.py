"""Schema management: Alembic upgrade/downgrade/check and the default agent rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection, Engine, create_engine, pool, text

import migrations
import models
from migrations import SCHEMA_LOCK_KEY
from models.errors import ValidationFailed
from workers.seed import seed_agents

SCRIPT_LOCATION = Path(migrations.__file__).resolve().parent


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def _engine(url: str) -> Engine:
    return create_engine(url, poolclass=pool.NullPool)


def upgrade(url: str, revision: str = "head", *, seed: bool = True) -> None:
    """Migrate to ``revision`` and (re)seed the default agents; safe to run twice, or
    twice at once: both hold the schema lock (``migrations.SCHEMA_LOCK_KEY``), the
    second waits and then finds nothing to do.

    A revision Alembic cannot go to (unknown, ``+5`` past the head, a range)
    is a ``ValidationFailed`` naming it and the revisions there are.
    """
    if not revision.strip():
        raise _cannot_migrate(revision, CommandError("no revision given"))
    engine = _engine(url)
    try:
        with engine.connect() as connection:
            _lock_schema(connection)  # for the session: the upgrade and the seeding
            config = alembic_config(url)
            config.attributes["connection"] = connection  # env.py's lock: this session's
            try:
                command.upgrade(config, revision)
            except CommandError as exc:
                raise _cannot_migrate(revision, exc) from None
            if seed:
                with connection.begin():
                    seed_agents(connection)
    finally:
        engine.dispose()  # closing the session releases the lock


def _lock_schema(connection: Connection) -> None:
    """Wait for the schema lock, held until the session ends; leave no transaction open
    (Alembic commits its own only on a connection that has none)."""
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
    connection.commit()


def _cannot_migrate(revision: str, exc: CommandError) -> ValidationFailed:
    return ValidationFailed(
        f"cannot migrate to {revision!r}: {exc}; revisions: {_revisions()}, or head"
    )


def downgrade(url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(url), revision)


def current_revision(url: str) -> str | None:
    engine = _engine(url)
    with engine.connect() as connection:
        revision = MigrationContext.configure(connection).get_current_revision()
    engine.dispose()
    return revision


def head_revision() -> str | None:
    return _scripts().get_current_head()


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config("postgresql://"))


def _revisions() -> str:
    """``0001, 0002, 0003 (head)``: oldest first."""
    scripts = _scripts()
    names = [
        f"{script.revision} (head)" if script.is_head else script.revision
        for script in scripts.walk_revisions()
    ]
    return ", ".join(reversed(names))


def schema_drift(url: str) -> list[str]:
    """Differences between the models and the database (empty when they match)."""
    engine = _engine(url)
    with engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        diffs = compare_metadata(context, models.Base.metadata)
    engine.dispose()
    return [line for diff in diffs for line in _described(diff)]


def _described(diff: Any) -> list[str]:
    """Alembic's difference as a sentence: what the database lacks or has beyond the models.

    ``toolbox db check`` printed the raw tuples (``('add_index', Index('ix_...',
    Column('task_id', UUID(), table=<agent_metrics>)))``).  A kind this does not
    know keeps Alembic's own text.
    """
    if isinstance(diff, list):  # one column's modifications
        return [line for change in diff for line in _described(change)]
    kind, *rest = diff
    lacks, extra = "missing from the database", "in the database but not in the models"
    if kind in ("add_table", "remove_table"):
        return [f"table {rest[0].name} {lacks if kind == 'add_table' else extra}"]
    if kind in ("add_column", "remove_column"):
        where = f"{rest[1]}.{rest[2].name}"
        return [f"column {where} {lacks if kind == 'add_column' else extra}"]
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint", "add_fk",
                "remove_fk"):  # fmt: skip
        item = rest[0]
        noun = {"index": "index", "constraint": "constraint", "fk": "foreign key"}[
            kind.split("_", 1)[1]
        ]
        columns = ", ".join(column.name for column in getattr(item, "columns", ()))
        named = f"{noun} {item.name or '(unnamed)'} on {item.table.name} ({columns})"
        return [f"{named} {lacks if kind.startswith('add') else extra}"]
    if kind.startswith("modify_"):
        _schema, table, column, _existing, before, after = rest
        what = kind.removeprefix("modify_").replace("_", " ")
        return [
            f"column {table}.{column}: {what} is {before} in the database, {after} in the models"
        ]
    return [str(diff)]
