"""``lms_integrations`` rows <-> ``ConnectionConfig``: secrets are encrypted on the way in.

The encrypted columns hold Fernet tokens (``lms.secrets``); plain secrets live
only in memory, inside a ``Credentials`` whose ``repr`` hides them.  The
caller passes the ``SecretBox`` (keys come from settings, which ``lms``
never reads) and owns the transaction.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import unicodedata
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import idna
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from lms.base import ConnectionConfig, Credentials
from lms.registry import client_class, make_client, unknown_option
from lms.secrets import SecretBox
from models.errors import ConfigurationError, NotFound, ValidationFailed
from models.lms import LMSIntegration
from models.redaction import redact

#: ``Credentials`` field -> encrypted column of ``lms_integrations``.
SECRET_COLUMNS: Mapping[str, str] = {
    "client_secret": "client_secret_encrypted",
    "api_key": "api_key_encrypted",
    "refresh_token": "refresh_token_encrypted",
    "private_key_pem": "private_key_encrypted",
}
#: ``Credentials`` field -> how the operator gives it: (the ``toolbox lms`` flag, its
#: environment variable), named in errors; the command line declares its options with these.
SECRET_INPUTS: Mapping[str, tuple[str, str]] = {
    "client_secret": ("--client-secret", "TOOLBOX_LMS_CLIENT_SECRET"),
    "api_key": ("--api-key", "TOOLBOX_LMS_API_KEY"),
    "refresh_token": ("--refresh-token", "TOOLBOX_LMS_REFRESH_TOKEN"),
    "private_key_pem": ("--private-key-file", "TOOLBOX_LMS_PRIVATE_KEY_FILE"),
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
#: The flag that gives each address ``check_url`` names, for its refusal of plain http.
URL_FLAGS: Mapping[str, str] = {
    "base URL": "--base-url",
    "auth endpoint": "--auth-endpoint",
    "token endpoint": "--token-endpoint",
}
#: One year: ``next sync`` (a timestamp) must stay computable, and no school waits longer.
MAX_FREQUENCY_HOURS = 8760
#: First half of the two-int advisory lock key of an LMS address ("LMS2"); the sync lock
#: of ``lms.schedule`` is "LMS1".
ADDRESS_LOCK_NAMESPACE = 0x4C4D5332


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


def add_integration(
    session: Session, new: NewIntegration, box: SecretBox | Callable[[], SecretBox]
) -> LMSIntegration:
    """Check ``new`` the way its client will, then add the row with its secrets encrypted.

    A bad integration is refused here instead of failing at 3 a.m. in the
    first scheduled sync, and so is a second integration of the same LMS
    (``refuse_duplicate``): it would sync every course and student twice.
    ``box`` may be a function making the box, called only once ``new`` passed
    every check: a refused add then makes no development key.
    """
    new = validated(new)
    refuse_duplicate(session, new.platform, new.base_url)
    row = LMSIntegration(auth_type=AUTH_TYPES[new.platform])
    write_row(row, new, box if isinstance(box, SecretBox) else box())
    session.add(row)
    session.flush()
    return row


def validated(
    new: NewIntegration,
    *,
    kept_options: Collection[str] = (),
    kept_secrets: Collection[str] = (),
) -> NewIntegration:
    """``new`` with its secrets stripped, once it passed the checks ``add`` and ``update`` share.

    An option key the platform's client does not read is refused (a typo it
    would ignore), and so is a secret it does not read (stored, never used),
    but for ``kept_options`` and ``kept_secrets``: what an update keeps as
    stored, which an older version stored unchecked.  Building the client (no
    network) raises the platform's own message for a missing credential or
    option.
    """
    new = dataclasses.replace(new, credentials=_stripped(new.credentials))
    _check(new, kept_options)
    check_secrets_used(new.platform, new.credentials, kept_secrets)
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
    return new


def write_row(row: LMSIntegration, new: NewIntegration, box: SecretBox) -> None:
    """Every setting of ``new`` onto ``row``, each secret encrypted with the newest key."""
    row.platform_name = new.platform
    row.institution_name = new.institution_name
    row.base_url = new.base_url
    row.api_version = new.api_version
    row.client_id = new.credentials.client_id
    row.auth_endpoint = new.auth_endpoint
    row.token_endpoint = new.token_endpoint
    row.options = dict(new.options)
    row.sync_frequency_hours = new.sync_frequency_hours
    row.grade_passback_enabled = new.grade_passback_enabled
    row.roster_sync_enabled = new.roster_sync_enabled
    row.content_sync_enabled = new.content_sync_enabled
    for name, column in SECRET_COLUMNS.items():
        plain = getattr(new.credentials, name)
        setattr(row, column, box.encrypt(plain) if plain else None)


def same_place(url: str) -> str:
    """``url`` compared as an address: scheme and host in lower case, no default port or "/".

    The host is compared as DNS resolves it: IDNA-encoded (``bücher.example``
    is ``xn--bcher-kva.example``) and without its one trailing dot.  An IPv6
    host keeps its brackets (``https://[::1]:8443``: the address stays a URL,
    and ``[::1]:8443`` never reads as ``[::1:8443]``), in one form for all the
    ways to write it (``[0:0::1]`` is ``[::1]``).
    """
    try:
        parts = urlsplit(url.strip())
        number = parts.port
    except ValueError:  # a bad port or IPv6 host, stored before ``check_url``: as written
        return url.strip().lower()
    host = _host((parts.hostname or "").lower())
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    port = "" if number in (None, default) else f":{number}"
    return urlunsplit((parts.scheme.lower(), host + port, parts.path.rstrip("/"), parts.query, ""))


def _host(hostname: str) -> str:
    """``hostname`` (as ``urlsplit`` gives it: no brackets) in the form ``same_place`` compares."""
    if ":" not in hostname:  # only an IPv6 literal holds a colon
        return _dns_name(hostname)
    try:
        hostname = ipaddress.IPv6Address(hostname).compressed
    except ValueError:  # not an address Python reads: as written
        pass
    return f"[{hostname}]"


def _dns_name(host: str) -> str:
    """``host`` in ASCII (IDNA), one trailing dot dropped; as given if IDNA refuses it.

    Python's own ``idna`` codec is IDNA 2003, which maps ``straße`` to
    ``strasse``: two hosts httpx (IDNA 2008) tells apart would look the same.
    """
    host = host.removesuffix(".")
    if host.isascii():
        return host
    try:  # the ``idna`` package (IDNA 2008), as httpx encodes the host it connects to
        return idna.encode(host).decode("ascii")
    except idna.IDNAError:  # an empty or over-long label, a disallowed character: as given
        return host


def refuse_duplicate(
    session: Session, platform: str, base_url: str, *, other_than: uuid.UUID | None = None
) -> None:
    """A second integration of one LMS would sync every course and student twice.

    ``ValidationFailed`` names the integration already there (enabled or
    not), to be changed with ``toolbox lms update`` instead.
    """
    found = same_lms(session, platform, base_url, other_than=other_than)
    if found is not None:
        duplicate, active = found
        disabled = "" if active else f"; it is disabled: `toolbox lms enable {duplicate}`"
        raise ValidationFailed(
            f"{platform} at {redact(base_url)} is already integration {duplicate}; "
            f"change it with `toolbox lms update {duplicate}`{disabled}"
        )


def same_lms(
    session: Session,
    platform: str,
    base_url: str,
    *,
    other_than: uuid.UUID | None = None,
    enabled_only: bool = False,
) -> tuple[uuid.UUID, bool] | None:
    """(id, is_active) of an integration of ``platform`` at ``base_url``'s address, if any.

    Takes a transaction-level advisory lock on the address first, held until
    the caller's transaction ends: two writers of one address (``add``, an
    address change, ``enable``) check one after the other, and the second
    sees the first's committed row (under READ COMMITTED, PostgreSQL's
    default).  An index cannot do this: the address is ``same_place`` of the
    URL, which no column holds.
    """
    address = same_place(base_url)
    session.execute(
        text("SELECT pg_advisory_xact_lock(:namespace, hashtext(:address))"),
        {"namespace": ADDRESS_LOCK_NAMESPACE, "address": f"{platform} {address}"},
    )
    query = select(LMSIntegration.id, LMSIntegration.base_url, LMSIntegration.is_active).where(
        LMSIntegration.platform_name == platform
    )
    if enabled_only:
        query = query.where(LMSIntegration.is_active)
    for row_id, url, active in session.execute(query.order_by(LMSIntegration.created_at)):
        if row_id != other_than and same_place(url) == address:
            return row_id, active
    return None


def get_integration(session: Session, integration_id: uuid.UUID) -> LMSIntegration:
    row = session.get(LMSIntegration, integration_id)
    if row is None:
        raise NotFound(f"no LMS integration {integration_id}")
    return row


def connection_config(row: LMSIntegration, box: SecretBox) -> ConnectionConfig:
    """The decrypted configuration of ``row``; ``ConfigurationError`` if a key is missing,
    or if an address an older version stored is plain http (``refuse_plain_http``): no
    secret is decrypted, and none goes out unencrypted."""
    for name, url in (("base URL", row.base_url), ("auth endpoint", row.auth_endpoint),
                      ("token endpoint", row.token_endpoint),
                      *client_class(row.platform_name).option_urls(row.options or {})):  # fmt: skip
        try:
            refuse_plain_http(name, url)
        except ValidationFailed as exc:
            flag = URL_FLAGS.get(name, "--options-json")
            raise ConfigurationError(
                f"the stored {exc.message}, with `toolbox lms update {row.id} {flag}` (an "
                "older version took it; the LMS is not called until then)"
            ) from None
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


def _check(new: NewIntegration, kept_options: Collection[str]) -> None:
    client_class(new.platform)  # NotSupported, naming the supported platforms
    problem = unknown_option(new.platform, (key for key in new.options if key not in kept_options))
    if problem is not None:
        raise ValidationFailed(problem)
    check_url("base URL", new.base_url)
    for name, url in (("auth endpoint", new.auth_endpoint), ("token endpoint", new.token_endpoint)):
        if url is not None:
            check_url(name, url)
    for name, url in client_class(new.platform).option_urls(new.options):
        check_url(name, url, query_allowed=True)  # a platform's service URL, called as given
    name = new.institution_name
    if not name.strip():
        raise ValidationFailed("the institution name is empty")
    bad = next((c for c in name if unicodedata.category(c) in ("Cc", "Zl", "Zp")), None)
    if bad is not None:  # a tab or line break splits the rows of `lms list` and `lms status`
        raise ValidationFailed(
            f"the institution name (--institution) must be one line without control "
            f"characters, found U+{ord(bad):04X} at character {name.index(bad) + 1}"
        )
    if len(name) > 200:
        raise ValidationFailed(
            f"the institution name (--institution) is {len(name)} characters long; at most 200"
        )
    if not 1 <= new.sync_frequency_hours <= MAX_FREQUENCY_HOURS:
        raise ValidationFailed(
            f"the sync frequency must be 1 to {MAX_FREQUENCY_HOURS} hours (a year), "
            f"got {new.sync_frequency_hours}"
        )
    if new.credentials.private_key_pem:
        try:
            load_pem_private_key(new.credentials.private_key_pem.encode(), password=None)
        except (ValueError, TypeError):
            raise ConfigurationError(
                "the private key is not an unencrypted PEM private key"
            ) from None


def check_url(name: str, url: object, *, query_allowed: bool = False) -> None:
    """An https address with a host (http only to this host: ``refuse_plain_http``); a password
    in it would be shown by ``lms list``.

    ``url`` may be anything an option held (a number, a list): refused, named.
    A query string or fragment is refused: the clients join API paths and
    their own query to the base URL, which drops both (``?x=1`` made every
    Canvas sync call ``/?per_page=100``), and no token endpoint needs one.
    ``query_allowed`` is for the service URLs a platform hands over whole
    (LTI NRPS and AGS, which the client calls as given, query kept: AGS 3.4).
    """
    text = url if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
        has_host = bool(parts.hostname) and (parts.port is None or parts.port > 0)
    except ValueError:  # a port that is not a number, a broken IPv6 address
        parts, has_host = urlsplit(""), False
    if "@" in parts.netloc:  # checked first: the refusal below repeats the URL
        raise ValidationFailed(
            f"{name} must not hold a user name or password; "
            "credentials go in the secret options (--api-key, --client-secret, ...)"
        )
    if len(text) > 500:
        raise ValidationFailed(f"{name} is {len(text)} characters long; at most 500")
    if not has_host or parts.scheme not in ("http", "https") or " " in text:
        shown = redact(url) if isinstance(url, str) else url  # one urllib cannot split
        raise ValidationFailed(f"{name} must be an http(s) URL with a host, got {shown!r}")
    try:  # the clients' own parser: IDNA 2008 refuses hosts Python's IDNA 2003 takes
        httpx.URL(text)
    except httpx.InvalidURL as exc:
        raise ValidationFailed(f"{name}: {exc}") from None
    refuse_plain_http(name, text)
    if "#" in text or ("?" in text and not query_allowed):  # not shown: a query may hold a key
        what = "a fragment (#...)" if query_allowed else "a query string or fragment (?... #...)"
        raise ValidationFailed(
            f"{name} must not hold {what}; give the address alone, "
            f"e.g. {parts.scheme}://{parts.netloc}{parts.path}"
        )


def refuse_plain_http(name: str, url: object) -> None:
    """Refuse ``url`` if plain http to a host other than this one (loopback: 127.0.0.0/8,
    ``::1``, ``localhost``): every request carries credentials, bearer tokens and client
    secrets, which would cross the network unencrypted.  A local test LMS keeps http."""
    try:
        parts = urlsplit(url.strip()) if isinstance(url, str) else None
        host = (parts.hostname or "").removesuffix(".") if parts else ""
    except ValueError:  # not a URL: ``check_url`` refuses it
        return
    if parts is None or parts.scheme.lower() != "http" or host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:  # a host name
        pass
    flag = f" ({URL_FLAGS[name]})" if name in URL_FLAGS else ""
    address = parts.netloc.rpartition("@")[2]  # a password an older version stored: left out
    raise ValidationFailed(
        f"{name}{flag} must use https: plain http would send the credentials unencrypted "
        f"(it is taken only for a loopback host: 127.0.0.0/8, ::1, localhost); give "
        f"https://{address}{parts.path}"
    )


def _stripped(credentials: Credentials) -> Credentials:
    """Secrets without surrounding blanks; a secret given as blanks only is refused."""
    changes: dict[str, str | None] = {}
    for name in SECRET_COLUMNS:
        value = getattr(credentials, name)
        if value is not None:
            if not value.strip():
                raise ValidationFailed(f"{_secret_named(name)} is blank")
            if name != "private_key_pem":
                _check_secret_text(name, value.strip())
            changes[name] = value.strip() if name != "private_key_pem" else value
    client_id = credentials.client_id
    changes["client_id"] = client_id.strip() or None if client_id is not None else None
    return dataclasses.replace(credentials, **changes)


def _check_secret_text(name: str, value: str) -> None:
    """A secret travels in HTTP headers and forms: ASCII, no control characters.

    A token pasted with a line break or a typographic character in it failed
    only at the first request, with a traceback or a header error quoting it.
    The message gives the position, never the secret.
    """
    bad = next((i for i, c in enumerate(value) if not " " <= c <= "~"), None)
    if bad is not None:
        raise ValidationFailed(
            f"{_secret_named(name)} must be ASCII without control characters; character "
            f"{bad + 1} of {len(value)} is not (a line break or a typographic quote pasted in?)"
        )


def check_secrets_used(platform: str, credentials: Credentials, kept: Collection[str] = ()) -> None:
    """Refuse a secret ``platform``'s client never reads, naming the one it does.

    The CLI also calls it before it prompts for the platform's own secret, so
    a wrong flag is refused before anyone types the right secret in vain.
    """
    reads = client_class(platform).secret_keys
    given = [name for name in SECRET_COLUMNS if getattr(credentials, name) is not None]
    unused = [name for name in given if name not in reads and name not in kept]
    if unused:
        wanted = " and ".join(_secret_named(name) for name in sorted(reads)) or "no secret"
        raise ValidationFailed(
            f"{platform} does not use {_secret_named(unused[0])}; it takes {wanted}"
        )


def _secret_named(name: str) -> str:
    """``the api key (--api-key or TOOLBOX_LMS_API_KEY)``: the secret, where it was given."""
    flag, variable = SECRET_INPUTS[name]
    label = "private key" if name == "private_key_pem" else name.replace("_", " ")
    return f"the {label} ({flag} or {variable})"


def with_retries(config: ConnectionConfig, max_retries: int) -> ConnectionConfig:
    """``config`` with fewer in-process retries (the caller backs off between runs)."""
    return dataclasses.replace(config, max_retries=max_retries)
