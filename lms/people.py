"""LMS users -> ``users`` rows, through ``lms_user_links`` (one link per integration and LMS id).

A roster member seen for the first time becomes a new user: its LMS username
and e-mail when they are free, otherwise a deterministic placeholder derived
from the integration and the LMS id (``@lms.invalid`` never receives mail).
Nobody is ever matched to an existing account (by e-mail, username or
placeholder): an LMS must not take over, or send grades for, an account it
does not own.  A created user cannot log in
with a password (the hash is unusable) until the platform sets one.  Users
that already exist are never rewritten by sync.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import Connection, String, Table, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY, insert

from lms.base import RosterEntry, RosterRole
from lms.rows import clip
from models.errors import ValidationFailed
from models.lms import LMSUserLink
from models.users import User

#: Never produced by a password hasher, so no password matches it.
UNUSABLE_PASSWORD = "!lms-sync"
#: Least privilege: an LMS never makes a platform admin; observers (parents) only read.
USER_ROLES: Mapping[RosterRole, str] = {
    "student": "student",
    "teacher": "teacher",
    "ta": "teacher",
    "admin": "teacher",
    "observer": "student",
}
PLACEHOLDER_DOMAIN = "lms.invalid"
#: Rows per multi-row INSERT (PostgreSQL takes at most 65535 parameters per statement).
CHUNK = 1000

_users = cast(Table, User.__table__)
_links = cast(Table, LMSUserLink.__table__)


def placeholder_username(integration_id: uuid.UUID, external_user_id: str) -> str:
    digest = hashlib.sha256(f"{integration_id}/{external_user_id}".encode()).hexdigest()
    return f"lms-{integration_id.hex[:8]}-{digest[:20]}"


def resolve_users(
    connection: Connection, integration_id: uuid.UUID, entries: Sequence[RosterEntry]
) -> dict[str, uuid.UUID]:
    """``users.id`` for each entry's LMS id, creating users and links that are missing."""
    wanted = [entry.external_user_id for entry in entries]
    linked = _linked(connection, integration_id, wanted)
    missing = [entry for entry in entries if entry.external_user_id not in linked]
    if missing:
        created = _create_users(connection, integration_id, missing)
        if created:
            connection.execute(
                insert(_links).on_conflict_do_nothing(),
                [
                    {"lms_integration_id": integration_id, "external_user_id": ext, "user_id": user}
                    for ext, user in created.items()
                ],
            )
        linked = _linked(connection, integration_id, wanted)
        unresolved = len(set(wanted) - set(linked))
        if unresolved:
            # Never adopted: whoever holds a placeholder name could then be sent grades.
            raise ValidationFailed(
                f"{unresolved} roster member(s) could not get a user: their placeholder "
                "username or e-mail belongs to another account"
            )
    return linked


def _linked(
    connection: Connection, integration_id: uuid.UUID, external_ids: Sequence[str]
) -> dict[str, uuid.UUID]:
    rows = connection.execute(
        select(_links.c.external_user_id, _links.c.user_id).where(
            _links.c.lms_integration_id == integration_id,
            _links.c.external_user_id == any_(bindparam("ids", type_=ARRAY(String))),
        ),
        {"ids": list(external_ids)},
    )
    return {row.external_user_id: row.user_id for row in rows}


def _create_users(
    connection: Connection, integration_id: uuid.UUID, entries: Sequence[RosterEntry]
) -> dict[str, uuid.UUID]:
    """New users for ``entries``: LMS names when free, placeholders for the rest."""
    created: dict[str, uuid.UUID] = {}
    first: list[dict[str, Any]] = []
    names: set[str] = set()
    for entry in entries:
        row = _user_values(integration_id, entry, own_names=True)
        if row["username"] not in names and row["email"] not in names:  # unique in the batch
            names.update((row["username"], row["email"]))
            first.append(row)
    created.update(_insert(connection, first))
    rest = [entry for entry in entries if entry.external_user_id not in created]
    if rest:
        second = [_user_values(integration_id, entry, own_names=False) for entry in rest]
        created.update(_insert(connection, second))
    return created


def _insert(connection: Connection, rows: list[dict[str, Any]]) -> dict[str, uuid.UUID]:
    """Insert what does not collide with an existing username or e-mail; map LMS id -> id."""
    by_username = {row["username"]: row["external_user_id"] for row in rows}
    rows = sorted(rows, key=lambda row: row["username"])  # one lock order for concurrent syncs
    created: dict[str, uuid.UUID] = {}
    for start in range(0, len(rows), CHUNK):
        values = [
            {k: v for k, v in row.items() if k != "external_user_id"}
            for row in rows[start : start + CHUNK]
        ]
        statement = insert(_users).values(values).on_conflict_do_nothing()
        inserted = connection.execute(statement.returning(_users.c.id, _users.c.username))
        created.update({by_username[row.username]: row.id for row in inserted})
    return created


def _user_values(
    integration_id: uuid.UUID, entry: RosterEntry, *, own_names: bool
) -> dict[str, Any]:
    placeholder = placeholder_username(integration_id, entry.external_user_id)
    username = clip(entry.username, 100) if own_names else None
    email = entry.email.strip() if own_names and entry.email and "@" in entry.email else None
    first, last = clip(entry.given_name, 100), clip(entry.family_name, 100)
    display = clip(" ".join(part for part in (first, last) if part), 200)
    return {
        "external_user_id": entry.external_user_id,
        "username": username or placeholder,
        "email": email if email and len(email) <= 255 else f"{placeholder}@{PLACEHOLDER_DOMAIN}",
        "password_hash": UNUSABLE_PASSWORD,
        "first_name": first,
        "last_name": last,
        "display_name": display,
        "role": USER_ROLES[entry.role],
    }
