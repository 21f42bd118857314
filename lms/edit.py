"""Change an integration after ``add``: new credentials or settings, disable and enable.

An update is checked exactly as ``add`` checks a new integration (the merged
settings and secrets go through ``lms.store.validated``), so a mistyped
change is refused with nothing written.  Disabling is the safe way to stop
an integration: its courses, links and pending grades stay, but the beat
schedule, ``toolbox lms sync`` and the passback drain all skip it (they
select ``is_active`` rows only) until it is enabled again.

An option key the platform's client does not read is refused when the
update gives it; one an older version stored is kept, unchecked, until
``options`` replaces them all.

Two integrations of one LMS would sync every student twice: an update that
moves an integration to the address of another is refused as ``add``
refuses it, and so is enabling one while another of that LMS is enabled
(databases written before ``add`` refused duplicates may hold such pairs;
``disable`` one of them).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from lms.base import Credentials
from lms.secrets import SecretBox
from lms.store import (
    SECRET_COLUMNS,
    NewIntegration,
    check_url,
    refuse_duplicate,
    same_lms,
    same_place,
    validated,
    write_row,
)
from models.errors import NotFound, ValidationFailed
from models.lms import LMSIntegration
from models.redaction import redact

T = TypeVar("T")


@dataclass(frozen=True)
class IntegrationChanges:
    """What to change; ``None`` keeps the stored value.

    ``secrets`` replaces the named ``Credentials`` fields (``api_key``,
    ``client_secret``, ``refresh_token``, ``private_key_pem``); ``options``
    replaces the stored options as a whole, ``extra_options`` sets single keys.
    """

    institution_name: str | None = None
    base_url: str | None = None
    client_id: str | None = None
    secrets: Mapping[str, str] = dataclasses.field(default_factory=dict, repr=False)
    api_version: str | None = None
    auth_endpoint: str | None = None
    token_endpoint: str | None = None
    options: Mapping[str, Any] | None = None
    extra_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sync_frequency_hours: int | None = None
    grade_passback_enabled: bool | None = None
    roster_sync_enabled: bool | None = None
    content_sync_enabled: bool | None = None


def update_integration(
    session: Session, integration_id: uuid.UUID, changes: IntegrationChanges, box: SecretBox
) -> bool:
    """Apply ``changes`` (row locked); every secret is written again under the newest key.

    Returns whether anything changed: ``changes`` naming no secret and only
    values already stored write nothing.  A secret given empty is refused
    as ``add`` refuses it (it used to keep the stored one, reported replaced).
    A stored secret no key opens is refused (``ConfigurationError``) unless
    ``changes`` replaces it: that is how an operator recovers from a lost key.
    """
    row = _locked(session, integration_id)
    _check_stored_urls(row, changes)
    unknown = set(changes.secrets) - set(SECRET_COLUMNS)
    if unknown:
        raise ValueError(f"not a secret: {', '.join(sorted(unknown))}")
    secrets = {
        name: changes.secrets[name]
        if name in changes.secrets
        else (box.decrypt(token, what=f"{column} of LMS integration {row.id}") if token else None)
        for name, column in SECRET_COLUMNS.items()
        for token in [getattr(row, column)]
    }
    client_id = row.client_id if changes.client_id is None else changes.client_id
    merged = NewIntegration(
        platform=row.platform_name,
        institution_name=_pick(changes.institution_name, row.institution_name),
        base_url=_pick(changes.base_url, row.base_url),
        credentials=Credentials(client_id=client_id, **secrets),
        api_version=_pick(changes.api_version, row.api_version),
        auth_endpoint=_pick(changes.auth_endpoint, row.auth_endpoint),
        token_endpoint=_pick(changes.token_endpoint, row.token_endpoint),
        options={**_pick(changes.options, row.options or {}), **changes.extra_options},
        sync_frequency_hours=_pick(changes.sync_frequency_hours, row.sync_frequency_hours),
        grade_passback_enabled=_pick(changes.grade_passback_enabled, row.grade_passback_enabled),
        roster_sync_enabled=_pick(changes.roster_sync_enabled, row.roster_sync_enabled),
        content_sync_enabled=_pick(changes.content_sync_enabled, row.content_sync_enabled),
    )
    kept = set(row.options or {}) - set(changes.extra_options) if changes.options is None else ()
    merged = validated(
        merged, kept_options=kept, kept_secrets=set(SECRET_COLUMNS) - set(changes.secrets)
    )
    if not changes.secrets and _settings(merged) == _settings(_stored(row)):
        return False
    if same_place(merged.base_url) != same_place(row.base_url):
        refuse_duplicate(session, merged.platform, merged.base_url, other_than=row.id)
    write_row(row, merged, box)
    session.flush()
    return True


def set_active(session: Session, integration_id: uuid.UUID, *, active: bool) -> bool:
    """Enable or disable; returns whether the integration was active before.

    Enabling is refused (``ValidationFailed``) while another integration of the
    same LMS is enabled.
    """
    row = _locked(session, integration_id)
    was = row.is_active
    if active and not was:
        found = same_lms(
            session, row.platform_name, row.base_url, other_than=row.id, enabled_only=True
        )
        if found is not None:
            raise ValidationFailed(
                f"{row.platform_name} at {redact(row.base_url)} is already integration "
                f"{found[0]}, enabled: both would sync every student; "
                f"`toolbox lms disable {found[0]}` first to switch to this one"
            )
    row.is_active = active
    session.flush()
    return was


def _check_stored_urls(row: LMSIntegration, changes: IntegrationChanges) -> None:
    """An address an older version stored past today's checks, and kept by ``changes``:
    refused as if given, saying it is the stored one and which flag replaces it."""
    for name, flag, stored, given in (
        ("base URL", "--base-url", row.base_url, changes.base_url),
        ("auth endpoint", "--auth-endpoint", row.auth_endpoint, changes.auth_endpoint),
        ("token endpoint", "--token-endpoint", row.token_endpoint, changes.token_endpoint),
    ):
        if given is None and stored is not None:
            try:
                check_url(name, stored)
            except ValidationFailed as exc:
                raise ValidationFailed(
                    f"the stored {exc} (an older version took it); replace it with {flag}"
                ) from None


def _locked(session: Session, integration_id: uuid.UUID) -> LMSIntegration:
    row = session.scalars(
        select(LMSIntegration).where(LMSIntegration.id == integration_id).with_for_update()
    ).one_or_none()
    if row is None:
        raise NotFound(f"no LMS integration {integration_id}")
    return row


def _stored(row: LMSIntegration) -> NewIntegration:
    """The settings ``row`` holds, secrets left out."""
    return NewIntegration(
        platform=row.platform_name,
        institution_name=row.institution_name,
        base_url=row.base_url,
        credentials=Credentials(client_id=row.client_id),
        api_version=row.api_version,
        auth_endpoint=row.auth_endpoint,
        token_endpoint=row.token_endpoint,
        options=dict(row.options or {}),
        sync_frequency_hours=row.sync_frequency_hours,
        grade_passback_enabled=row.grade_passback_enabled,
        roster_sync_enabled=row.roster_sync_enabled,
        content_sync_enabled=row.content_sync_enabled,
    )


def _settings(new: NewIntegration) -> NewIntegration:
    """``new`` without its secrets, to compare with ``_stored``."""
    plain = Credentials(client_id=new.credentials.client_id)
    return dataclasses.replace(new, credentials=plain, options=dict(new.options))


def _pick(new: T | None, old: T) -> T:
    return old if new is None else new
