"""What the LMS layer says about responses: the LMS's own messages, shape checks, redaction.

Every message built here may reach logs, ``sync_error_message`` and an
operator's terminal, so it names URLs and fields but never a secret.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable
from typing import Any

import httpx

from models.errors import ValidationFailed
from models.redaction import MASK, SECRET_PARAMS, redact

_SNIPPET = 200
_HTML_START = re.compile(r"<(?:!doctype\s+html|html|head|body)\b", re.IGNORECASE)
_HTML_TITLE = re.compile(r"<title[^>]*>(.*?)</title\s*>", re.IGNORECASE | re.DOTALL)


def require_object(value: Any, where: str, *keys: str) -> dict[str, Any]:
    """``value`` as a JSON object holding ``keys``, else ``ValidationFailed`` naming ``where``."""
    if not isinstance(value, dict):
        raise ValidationFailed(f"{where}: expected a JSON object, got {type(value).__name__}")
    missing = [key for key in keys if value.get(key) is None]
    if missing:
        raise ValidationFailed(f"{where}: object without {', '.join(missing)}")
    return value


def lms_message(response: httpx.Response) -> str:
    """The LMS's own explanation from the common error shapes, else the text.

    An HTML page (a proxy's or load balancer's error page, a login page) is
    named by its title, never quoted: its markup explains nothing.
    """
    try:
        body = response.json()
    except ValueError:
        return _text_message(response)
    return _message_from(body) or _text_message(response)


def redirect_message(response: httpx.Response, secrets: Iterable[str]) -> str:
    """What a redirect says, ``was redirected with HTTP 301 to https://...``, for a client
    that follows none: every request carries the integration's credentials, and a
    redirect (to another host, or to plain http) would send them along.  The target is
    shown redacted, without the request's ``secrets``, so that an LMS that moved can be
    given its new address."""
    location = response.headers.get("Location", "").strip()
    try:
        target = str(response.request.url.join(location))
    except httpx.InvalidURL:
        target = location[:_SNIPPET]
    return (
        f"was redirected with HTTP {response.status_code} to {scrub(redact(target), secrets)};"
        " not followed, so the credentials are not sent there (if the LMS moved, give its"
        " new address)"
    )


def _text_message(response: httpx.Response) -> str:
    text = response.text.strip()
    content_type = response.headers.get("Content-Type", "").lower()
    if "html" in content_type or _HTML_START.match(text):
        title = _HTML_TITLE.search(text)
        name = " ".join(html.unescape(title.group(1)).split())[:_SNIPPET] if title else ""
        page = f"an HTML page titled {name!r}" if name else "an HTML page without a title"
        return f"{page} ({len(response.content)} bytes), not an answer of the LMS API"
    return text[:_SNIPPET] or response.reason_phrase


def _message_from(body: Any) -> str | None:
    if isinstance(body, str | list) or not isinstance(body, dict):
        items = [body] if isinstance(body, str) else body if isinstance(body, list) else []
        parts = [item if isinstance(item, str) else _message_from(item) for item in items]
        return "; ".join(part for part in parts if part) or None
    status = _status_info(body)
    if status:
        return status
    errors = body.get("errors")
    found = _message_from(list(errors.values()) if isinstance(errors, dict) else errors)
    message = body.get("message") or body.get("detail")
    if found or isinstance(message, str):
        return found or str(message)
    error, description = body.get("error"), body.get("error_description")
    if isinstance(description, str):
        return f"{error}: {description}" if isinstance(error, str) else description
    return _message_from(error)


def _status_info(body: dict[str, Any]) -> str | None:
    """OneRoster's ``imsx_StatusInfoDType`` error body, or a 1.1 ``statusInfoSet`` of them,
    as ``description (code minor, ...)``."""
    infos = body.get("statusInfoSet")
    if isinstance(infos, list):
        parts = [_status_info(info) for info in infos if isinstance(info, dict)]
        return "; ".join(part for part in parts if part) or None
    if "imsx_codeMajor" not in body:
        return None
    minor = body.get("imsx_CodeMinor")
    fields = minor.get("imsx_codeMinorField") if isinstance(minor, dict) else None
    codes = [
        str(field["imsx_codeMinorFieldValue"])
        for field in (fields if isinstance(fields, list) else [])
        if isinstance(field, dict) and field.get("imsx_codeMinorFieldValue")
    ]
    description = body.get("imsx_description")
    text = description.strip() if isinstance(description, str) else ""
    text = text or f"{body.get('imsx_codeMajor')} ({body.get('imsx_severity')})"
    return f"{text} ({', '.join(codes)})" if codes else text


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
    """``text`` with every occurrence of each secret replaced, also where it is quoted escaped.

    A secret holding a control character (a token pasted with a line break in it) is
    named escaped: h11 refuses such a header with ``Illegal header value b'Bearer
    abc\\ndef'``, which would otherwise quote the whole token.
    """
    forms = {form for secret in secrets for form in _quoted_forms(secret)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def _quoted_forms(secret: str) -> set[str]:
    """``secret`` as it is, and as the repr of it as text and as UTF-8 bytes shows it."""
    forms = {secret, repr(secret)[1:-1], ascii(secret)[1:-1], repr(secret.encode())[2:-1]}
    return {form for form in forms if form}
