"""One HTTP exchange with an LMS, bounded in time and size.

httpx's timeout holds for each socket operation, not for a whole exchange: a
server that trickles its headers or its body one byte every few seconds never
lets a 30 s read timeout fire, and held a sync for as long as it kept
trickling.  Nor does httpx bound a body: a 100 MB answer was read into memory
whole, and an endless chunked one would be read until the worker died.  Here
the whole exchange, from the start of connecting to the body's last byte,
must be over within ``deadline`` seconds (``lms.deadline`` holds it at each
socket operation of a client from ``bounded_client``, as the LMS clients
are; the body is checked between pieces on any transport).  Past it the phase
that ran out raises ``ReadTimeout`` (or ``ConnectTimeout``, ``WriteTimeout``), a
timeout like any other, so it is retried as one.  The answer must also be at
most ``MAX_BODY_BYTES`` long once decoded (a malformed answer otherwise,
``ValidationFailed``), and a body whose ``Content-Encoding`` does not decode
(a corrupt gzip) is a malformed answer too, not a crash.
"""

from __future__ import annotations

import httpx

from lms.deadline import Deadline, exchange_deadline
from models.errors import ValidationFailed
from models.redaction import redact

MAX_BODY_BYTES = 64 * 1024 * 1024
"""The largest answer read (decoded): far above any page an LMS client asks for."""
_DROPPED = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def send_bounded(
    client: httpx.Client,
    request: httpx.Request,
    deadline: float,
    *,
    max_bytes: int | None = None,
) -> httpx.Response:
    """``request`` sent by ``client``, its answer read in full within ``deadline`` seconds.

    Raises ``httpx.ReadTimeout`` when the answer is not complete in time
    (``ConnectTimeout`` or ``WriteTimeout`` when the time ran out before it;
    any other ``httpx.TransportError`` as ``client.send`` does), and
    ``ValidationFailed`` for a body above ``max_bytes`` (``MAX_BODY_BYTES``) or one that
    does not decode.
    """
    max_bytes = MAX_BODY_BYTES if max_bytes is None else max_bytes
    with exchange_deadline(deadline) as limit:
        response = client.send(request, stream=True)
        try:
            declared = response.headers.get("Content-Length", "").strip()
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(request, f"{int(declared)} bytes announced", max_bytes)
            chunks = _read_body(request, response, limit, max_bytes)
        finally:
            response.close()
    headers = [
        (name, value)
        for name, value in response.headers.multi_items()
        if name.lower() not in _DROPPED
    ]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=b"".join(chunks),
        request=request,
        extensions=response.extensions,
    )


def _read_body(
    request: httpx.Request, response: httpx.Response, limit: Deadline, max_bytes: int
) -> list[bytes]:
    chunks: list[bytes] = []
    size = 0
    try:
        for chunk in response.iter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(request, f"more than {max_bytes} bytes sent", max_bytes)
            chunks.append(chunk)
            if limit.left() <= 0:
                raise httpx.ReadTimeout(limit.message, request=request)
    except httpx.DecodingError as exc:
        encoding = response.headers.get("Content-Encoding", "none")
        raise ValidationFailed(
            f"{request.method} {redact(str(request.url))}: the body does not decode as "
            f"its Content-Encoding {encoding!r} says ({exc}); not read"
        ) from None
    return chunks


def _too_large(request: httpx.Request, what: str, max_bytes: int) -> ValidationFailed:
    limit = f"{max_bytes // 2**20} MiB" if max_bytes % 2**20 == 0 else f"{max_bytes} bytes"
    return ValidationFailed(
        f"{request.method} {redact(str(request.url))}: the answer is too large ({what}; "
        f"at most {limit} are read); not read"
    )
