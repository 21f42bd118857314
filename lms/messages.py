"""What the LMS layer says about responses: the LMS's own messages, shape checks, redaction.

Every message built here may reach logs, ``sync_error_message`` and an
operator's terminal, so it names URLs and fields but never a secret.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import httpx

from models.errors import ValidationFailed

#: Query and form parameters whose values are secrets, redacted from messages.
SECRET_PARAMS = frozenset(
    "access_token api_key apikey client_secret oauth_signature password refresh_token secret"
    " token wstoken".split()
)
REDACTED = "REDACTED"
_SNIPPET = 200
#: The user part of a URL: what stands between ``scheme://`` and the last ``@`` before the
#: path, query or fragment (a password may hold an unescaped ``@``).
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s\"'<>]+)@")
_SECRET_VALUE = re.compile(rf"(?i)(?P<key>[?&](?:{'|'.join(sorted(SECRET_PARAMS))})=)[^&#\s\"'<>]*")


def redact(text: str) -> str:
    """``text`` with the secrets of every URL in it masked, ready to show or log.

    A password becomes ``***`` (``https://user:***@host``); a user part without
    one is masked whole (it is often a token); the values of secret query
    parameters become ``REDACTED``.  Never raises, so an address stored by an
    older version, however malformed, can still be listed.
    """
    if "@" in text:
        text = _USERINFO.sub(_masked_userinfo, text)
    return _SECRET_VALUE.sub(rf"\g<key>{REDACTED}", text) if "=" in text else text


def redact_url(url: httpx.URL | str) -> str:
    """``url`` as ``redact`` shows it."""
    return redact(str(url))


def _masked_userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match["userinfo"].partition(":")
    return f"{match['scheme']}{user}:***@" if colon else f"{match['scheme']}***@"


def require_object(value: Any, where: str, *keys: str) -> dict[str, Any]:
    """``value`` as a JSON object holding ``keys``, else ``ValidationFailed`` naming ``where``."""
    if not isinstance(value, dict):
        raise ValidationFailed(f"{where}: expected a JSON object, got {type(value).__name__}")
    missing = [key for key in keys if value.get(key) is None]
    if missing:
        raise ValidationFailed(f"{where}: object without {', '.join(missing)}")
    return value


def lms_message(response: httpx.Response) -> str:
    """The LMS's own explanation from the common error shapes, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:_SNIPPET] or response.reason_phrase
    return _message_from(body) or response.text.strip()[:_SNIPPET] or response.reason_phrase


def _message_from(body: Any) -> str | None:
    if isinstance(body, str | list) or not isinstance(body, dict):
        items = [body] if isinstance(body, str) else body if isinstance(body, list) else []
        parts = [item if isinstance(item, str) else _message_from(item) for item in items]
        return "; ".join(part for part in parts if part) or None
    errors = body.get("errors")
    found = _message_from(list(errors.values()) if isinstance(errors, dict) else errors)
    message = body.get("message") or body.get("detail")
    if found or isinstance(message, str):
        return found or str(message)
    error, description = body.get("error"), body.get("error_description")
    if isinstance(description, str):
        return f"{error}: {description}" if isinstance(error, str) else description
    return _message_from(error)


def secrets_of(request: httpx.Request | None, extra: Iterable[str]) -> list[str]:
    """Values that must never appear in a message about ``request``."""
    found = [value for value in extra if value]
    if request is not None:
        for name in ("Authorization", "Proxy-Authorization"):
            value = request.headers.get(name)
            if value:
                found.append(value)
                found.extend(value.split(" ", 1)[1:])
        for key, value in request.url.params.multi_items():
            if key.lower() in SECRET_PARAMS:
                found.append(value)
    return sorted({value for value in found if len(value) >= 4}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each secret replaced."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    return text
