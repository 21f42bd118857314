"""One HTTP exchange with an LMS, bounded in time and size.

httpx's timeout holds for each socket operation, not for a whole answer: a
server that sends its headers and then one byte of body every few seconds
never lets a 30 s read timeout fire, and held a sync for as long as it kept
trickling.  Nor does httpx bound a body: a 100 MB answer was read into memory
whole, and an endless chunked one would be read until the worker died.  Here
the answer, body included, must be complete within ``deadline`` seconds of
the request (``ReadTimeout`` otherwise, a timeout like any other, so it is
retried as one) and at most ``MAX_BODY_BYTES`` long once decoded (a malformed
answer otherwise, ``ValidationFailed``).  A body whose ``Content-Encoding``
does not decode (a corrupt gzip) is a malformed answer too, not a crash.
"""

from __future__ import annotations

import time

import httpx

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

    Raises ``httpx.ReadTimeout`` when the answer is not complete in time (any
    other ``httpx.TransportError`` as ``client.send`` does), and
    ``ValidationFailed`` for a body above ``max_bytes`` (``MAX_BODY_BYTES``) or one that
    does not decode.
    """
    max_bytes = MAX_BODY_BYTES if max_bytes is None else max_bytes
    due = time.monotonic() + deadline
    response = client.send(request, stream=True)
    try:
        declared = response.headers.get("Content-Length", "").strip()
        if declared.isdigit() and int(declared) > max_bytes:
            raise _too_large(request, f"{int(declared)} bytes announced", max_bytes)
        _shorten_read_timeout(request, due)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > max_bytes:
                    raise _too_large(request, f"more than {max_bytes} bytes sent", max_bytes)
                chunks.append(chunk)
                if time.monotonic() > due:
                    raise _overdue(request, deadline)
        except httpx.DecodingError as exc:
            encoding = response.headers.get("Content-Encoding", "none")
            raise ValidationFailed(
                f"{request.method} {redact(str(request.url))}: the body does not decode as "
                f"its Content-Encoding {encoding!r} says ({exc}); not read"
            ) from None
        if time.monotonic() > due:
            raise _overdue(request, deadline)
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


def _shorten_read_timeout(request: httpx.Request, due: float) -> None:
    """Wait for each piece of the body no longer than the time left before ``due``.

    httpcore reads the request's ``timeout`` extension when the body starts, so
    a server that stops sending mid-body is cut off at the deadline, not a read
    timeout after it.  The check between pieces (``send_bounded``) holds anyway.
    """
    timeouts = request.extensions.get("timeout")
    if isinstance(timeouts, dict):
        left = max(0.001, due - time.monotonic())
        read = timeouts.get("read")
        timeouts["read"] = left if read is None else min(float(read), left)


def _overdue(request: httpx.Request, deadline: float) -> httpx.ReadTimeout:
    return httpx.ReadTimeout(f"no complete answer within {deadline:g} s", request=request)


def _too_large(request: httpx.Request, what: str, max_bytes: int) -> ValidationFailed:
    limit = f"{max_bytes // 2**20} MiB" if max_bytes % 2**20 == 0 else f"{max_bytes} bytes"
    return ValidationFailed(
        f"{request.method} {redact(str(request.url))}: the answer is too large ({what}; "
        f"at most {limit} are read); not read"
    )
