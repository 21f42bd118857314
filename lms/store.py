"""``lms_integrations`` rows <-> ``ConnectionConfig``: secrets are encrypted on the way in.

The encrypted columns hold Fernet tokens (``lms.secrets``); plain secrets live
only in memory, inside a ``Credentials`` whose ``repr`` hides them.  The
caller passes the ``SecretBox`` (keys come from settings, which ``lms``
never reads) and owns the transaction.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import select
from sqlalchemy.orm import Session

from lms.base import ConnectionConfig, Credentials
from lms.registry import client_class, make_client
from lms.secrets import SecretBox
from models.errors import ConfigurationError, NotFound, ValidationFailed
from models.lms import LMSIntegration

#: ``Credentials`` field -> encrypted column of ``lms_integrations``.
SECRET_COLUMNS: Mapping[str, str] = {
    "client_secret": "client_secret_encrypted",
    "api_key": "api_key_encrypted",
    "refresh_token": "refresh_token_encrypted",
    "private_key_pem": "private_key_encrypted",
}
#: How each platform authenticates (the ``auth_type`` column).
AUTH_TYPES: Mapping[str, str] = {
    "canvas": "token",
    "schoology": "oauth1",
    "moodle": "token",
    "blackboard": "oauth2",
    "lti": "lti_jwt",
    "oneroster": "oauth2",
}


@dataclass(frozen=True)
class NewIntegration:
    """What ``toolbox lms add`` (or a service) knows about a new integration."""

    platform: str
    institution_name: str
    base_url: str
    credentials: Credentials
    api_version: str | None = None
    auth_endpoint: str | None = None
    token_endpoint: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    sync_frequency_hours: int = 24
    grade_passback_enabled: bool = True
    roster_sync_enabled: bool = True
    content_sync_enabled: bool = True


def add_integration(session: Session, new: NewIntegration, box: SecretBox) -> LMSIntegration:
    """Check ``new`` the way its client will, then add the row with its secrets encrypted.

    Building the client (no network) raises the platform's own message for a
    missing credential or option, so a bad integration is refused here
    instead of failing at 3 a.m. in the first scheduled sync.
    """
    _check(new)
    config = ConnectionConfig(
        platform=new.platform,
        base_url=new.base_url,
        credentials=new.credentials,
        api_version=new.api_version,
        auth_endpoint=new.auth_endpoint,
        token_endpoint=new.token_endpoint,
        options=dict(new.options),
    )
    make_client(config).close()
    row = LMSIntegration(
        platform_name=new.platform,
        institution_name=new.institution_name,
        base_url=new.base_url,
        api_version=new.api_version,
        auth_type=AUTH_TYPES[new.platform],
        client_id=new.credentials.client_id,
        auth_endpoint=new.auth_endpoint,
        token_endpoint=new.token_endpoint,
        options=dict(new.options),
        sync_frequency_hours=new.sync_frequency_hours,
        grade_passback_enabled=new.grade_passback_enabled,
        roster_sync_enabled=new.roster_sync_enabled,
        content_sync_enabled=new.content_sync_enabled,
    )
    for name, column in SECRET_COLUMNS.items():
        plain = getattr(new.credentials, name)
        setattr(row, column, box.encrypt(plain) if plain else None)
    session.add(row)
    session.flush()
    return row


def get_integration(session: Session, integration_id: uuid.UUID) -> LMSIntegration:
    row = session.get(LMSIntegration, integration_id)
    if row is None:
        raise NotFound(f"no LMS integration {integration_id}")
    return row


def connection_config(row: LMSIntegration, box: SecretBox) -> ConnectionConfig:
    """The decrypted configuration of ``row``; ``ConfigurationError`` if a key is missing."""
    secrets = {
        name: box.decrypt(token, what=f"{column} of LMS integration {row.id}")
        for name, column in SECRET_COLUMNS.items()
        if (token := getattr(row, column))
    }
    return ConnectionConfig(
        platform=row.platform_name,
        base_url=row.base_url,
        credentials=Credentials(client_id=row.client_id, **secrets),
        api_version=row.api_version,
        auth_endpoint=row.auth_endpoint,
        token_endpoint=row.token_endpoint,
        options=dict(row.options or {}),
    )


def load_config(session: Session, integration_id: uuid.UUID, box: SecretBox) -> ConnectionConfig:
    return connection_config(get_integration(session, integration_id), box)


@dataclass(frozen=True)
class RotationReport:
    integrations: int
    rotated: int
    already_current: int


def rotate_secrets(session: Session, box: SecretBox) -> RotationReport:
    """Re-encrypt every stored secret under the newest key (rows locked while rewritten).

    Run it after putting a new key first; once it reports, the old keys can
    be removed from the key list.  A secret no key opens stops the rotation
    with ``ConfigurationError`` naming its row, and nothing is written.
    """
    rows = session.scalars(select(LMSIntegration).order_by(LMSIntegration.id).with_for_update())
    integrations = rotated = current = 0
    for row in rows:
        integrations += 1
        for column in SECRET_COLUMNS.values():
            token = getattr(row, column)
            if not token:
                continue
            if box.is_current(token):
                current += 1
                continue
            setattr(row, column, box.rotate(token, what=f"{column} of LMS integration {row.id}"))
            rotated += 1
    session.flush()
    return RotationReport(integrations, rotated, current)


def _check(new: NewIntegration) -> None:
    client_class(new.platform)  # NotSupported, naming the supported platforms
    parts = urlsplit(new.base_url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationFailed(f"base URL must be an http(s) URL with a host, got {new.base_url!r}")
    if not new.institution_name.strip():
        raise ValidationFailed("the institution name is empty")
    if len(new.institution_name) > 200 or len(new.base_url) > 500:
        raise ValidationFailed("institution name (200) or base URL (500) is too long")
    if new.sync_frequency_hours <= 0:
        raise ValidationFailed("the sync frequency must be at least one hour")
    if new.credentials.private_key_pem:
        try:
            load_pem_private_key(new.credentials.private_key_pem.encode(), password=None)
        except (ValueError, TypeError):
            raise ConfigurationError(
                "the private key is not an unencrypted PEM private key"
            ) from None


def with_retries(config: ConnectionConfig, max_retries: int) -> ConnectionConfig:
    """``config`` with fewer in-process retries (the caller backs off between runs)."""
    return dataclasses.replace(config, max_retries=max_retries)
