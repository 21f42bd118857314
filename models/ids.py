"""Ids typed by people: a full UUID, or a unique prefix of one.

Lists on the command line shorten ids (``toolbox task list`` at 80 columns,
``toolbox lms list`` to 8 characters), so every command that takes an id
accepts what they show, with or without the dashes.  The prefix is matched
on the table itself as a uuid range the primary key index finds (and, when it
has dashes, ``id::text LIKE prefix || '%'``).  The Python API takes full ids only
(``parse_id``): a value that is not a UUID is refused before any query, in
the same words.
"""

from __future__ import annotations

import uuid

from sqlalchemy import Connection, text

from models.errors import NotFound, ValidationFailed, quoted

MIN_PREFIX = 4
SHOWN_MATCHES = 5
_HEX = frozenset("0123456789abcdef")


def resolve_id(
    connection: Connection, value: str, *, table: str, noun: str, where: str | None = None
) -> uuid.UUID:
    """The id ``value`` names in ``table``: itself if a full UUID, else the one row it prefixes.

    ``table`` and ``where`` (an extra SQL condition on the row) are the
    caller's constants, never user input.  A full UUID is returned unchecked:
    the caller's lookup says "not found" in its own words.
    """
    full = as_uuid(value)
    if full is not None:
        return full
    prefix = value.strip().lower()
    digits = prefix.replace("-", "")
    if len(digits) < MIN_PREFIX or len(digits) > 32 or not set(digits) <= _HEX:
        raise ValidationFailed(
            f"not {article(noun)} {noun} id (or a prefix of {MIN_PREFIX}+ hex characters): "
            f"{quoted(value)}"
        )
    condition = f" AND ({where})" if where else ""
    # hex digits alone: the range is exactly the ids they begin (without their dashes, as
    # ``uuid.hex`` prints them); dashes must then also stand where the id's own do
    dashes = " AND id::text LIKE :prefix" if "-" in prefix else ""
    found = list(
        connection.execute(
            text(
                f"SELECT id FROM {table} WHERE id BETWEEN :low AND :high"
                f"{dashes}{condition} ORDER BY id LIMIT {SHOWN_MATCHES + 1}"
            ),
            {
                "low": uuid.UUID(hex=digits.ljust(32, "0")),
                "high": uuid.UUID(hex=digits.ljust(32, "f")),
                "prefix": prefix + "%",
            },
        ).scalars()
    )
    if not found:
        raise NotFound(f"no {noun} id starts with {quoted(prefix)}")
    if len(found) > 1:
        shown = ", ".join(str(match) for match in found[:SHOWN_MATCHES])
        more = ", ..." if len(found) > SHOWN_MATCHES else ""
        raise ValidationFailed(
            f"{quoted(prefix)} matches several {noun}s ({shown}{more}); give more of the id"
        )
    resolved: uuid.UUID = found[0]
    return resolved


def as_uuid(value: object) -> uuid.UUID | None:
    """``value`` as a UUID (itself, or a string that spells one), else None."""
    if isinstance(value, uuid.UUID):
        return value
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


def parse_id(value: object, *, noun: str, field: str) -> uuid.UUID:
    """``value`` as a UUID, or ``ValidationFailed`` naming ``field`` (never echoing the value).

    For the Python API, whose callers pass ids they got from it: a full id,
    as a ``uuid.UUID`` or its text.  A malformed id is a mistake to report,
    not a row to look for.
    """
    found = as_uuid(value)
    if found is None:
        raise ValidationFailed(
            f"{field}: not {article(noun)} {noun} id (a UUID)", errors=[f"{field}: not a UUID"]
        )
    return found


def kind_of(value: object) -> str:
    """What ``value`` is, for a refusal: ``an Engine``, ``a dict``."""
    name = type(value).__name__
    return f"{article(name)} {name}"


def article(noun: str) -> str:
    """``a`` or ``an`` before ``noun`` (``an agent task``, ``an LMS integration``)."""
    return "an" if noun[:1].lower() in "aeio" or noun.startswith("LMS") else "a"
