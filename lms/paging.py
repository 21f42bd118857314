"""Paging rules every LMS listing shares: where the next page is, and when to stop.

``lms.http`` sends the requests; this module decides what its answers say about
paging.  A next page is followed only on the origin that named it (the request
carries the integration's credentials), a page already read or a page of
records all read already is refused (a server that ignores the paging
parameter would loop for ever), and an empty page while the server still
promises records fails the listing instead of ending it (a sync would take
every record after it for gone).  The platform clients (Blackboard, Schoology,
Moodle, LTI) page their own shapes with the same helpers.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from typing import Any

import httpx

from models.errors import ValidationFailed
from models.redaction import redact

_DEFAULT_PORTS = {"http": 80, "https": 443}
NEXT_STANDS_STILL = "its next-page link does not move on"
_LINK = re.compile(r"<([^>]*)>([^<]*)")
_REL = re.compile(r"""\brel\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s;,]+))""", re.IGNORECASE)


def parse_link_header(value: str) -> dict[str, str]:
    """Map each ``rel`` of an RFC 8288 ``Link`` header to its URL (first wins)."""
    links: dict[str, str] = {}
    for match in _LINK.finditer(value):
        url, attributes = match.group(1).strip(), match.group(2)
        for rel_match in _REL.finditer(attributes):
            rels = next(group for group in rel_match.groups() if group is not None)
            for rel in rels.split():
                links.setdefault(rel.lower(), url)
    return links


def next_page_url(page_url: httpx.URL, link: str, what: str) -> httpx.URL:
    """``link`` (absolute or relative) resolved against the page that named it.

    A link that leaves that page's origin (scheme, host, port) is refused: every
    request carries the integration's credentials (a bearer token, an OAuth
    signature), and a next page on another host would hand them to that host.
    The error names the other origin only, never its path or query.
    """
    try:
        target = page_url.join(link.strip())
    except httpx.InvalidURL as exc:
        raise ValidationFailed(
            f"GET {redact(str(page_url))}: {what} is not a valid URL ({redact(str(exc))})"
        ) from None
    if origin(target) != origin(page_url):
        port = f":{target.port}" if target.port else ""
        raise ValidationFailed(
            f"GET {redact(str(page_url))}: {what} points to another host "
            f"({target.scheme}://{target.host}{port}); not followed, so the credentials "
            "are not sent there"
        )
    return target


def origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """Scheme, host and port of ``url``, the default port spelt out."""
    return url.scheme, url.host, url.port or _DEFAULT_PORTS.get(url.scheme)


def page_key(url: httpx.URL) -> tuple[Any, ...]:
    """``url`` as the page of a listing it asks for, as Canvas reads it: the query parsed,
    in any order; no ``page`` (or ``page=first``) is page 1; ``per_page`` left out, since
    Canvas caps it (a first ``?per_page=100`` and a link's ``?page=1&per_page=2`` are one
    page, and one listing never goes back to a page number with another size)."""
    page = url.params.get("page") or "1"
    rest = sorted(
        (key, value) for key, value in url.params.multi_items() if key not in ("page", "per_page")
    )
    return (*origin(url), url.path, "1" if page == "first" else page, tuple(rest))


class PageRepeats:
    """The records one listing has read, to stop a server that answers every page alike.

    A server that ignores the paging parameter (``offset``, ``page``, ``start``)
    answers each request with the same records: with ``X-Total-Count: 100000`` a
    OneRoster listing asked 861 times in 40 s for records it had.  A page whose every
    record this listing already read is refused instead (``ValidationFailed``).
    Records are compared whole, as JSON: a record that changed between two pages
    counts as new, and a page that repeats some records (paging shifted by an
    insert) is read.
    """

    def __init__(self) -> None:
        self._read: set[bytes] = set()

    def check(
        self, items: Sequence[Any], where: str, at: str = "", cause: str = NEXT_STANDS_STILL
    ) -> None:
        """Remember ``items``; refuse them all read already (``at``: where in the listing,
        ``cause``: why, e.g. ``the server ignores offset``)."""
        digests = {_digest(item) for item in items}
        if digests and digests <= self._read:
            raise ValidationFailed(
                f"{where}: paging repeats itself{at} (every record of the page was read "
                f"already): {cause}"
            )
        self._read |= digests


def _digest(item: Any) -> bytes:
    text = json.dumps(item, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


def cut_short(where: str, at: str, promise: str) -> ValidationFailed:
    """The refusal of an empty page while the server still promises records (``promise``:
    ``X-Total-Count says 3001 records``): a malformed answer, never the end of a listing.

    Taken for the end, it cut the listing short without a word, and a sync took every
    record after it for gone (a class's 2,001 enrollments marked dropped): refused, the
    course fails and keeps its rows.  ``at``: where in the listing (``offset 1000``).
    """
    return ValidationFailed(
        f"{where}: the page at {at} is empty, but {promise}; not taken for the end of the listing"
    )


def more_promised(
    response: httpx.Response, total_header: str | None, read: int, total: int | None
) -> str | None:
    """What says more records follow an empty page, after ``read`` records: a ``total``
    (``total_header``'s) above ``read``, or, without one, a ``Link`` header with
    ``rel="next"``; ``None`` when nothing does (the data ran out)."""
    if total is not None:
        return f"{total_header} says {total} records" if read < total else None
    if "next" in parse_link_header(response.headers.get("Link", "")):
        return 'its Link header names a next page (rel="next")'
    return None


def stated_total(
    response: httpx.Response, total_header: str | None, last: int | None
) -> int | None:
    """The record count ``response`` states in ``total_header``, else ``last``: the one an
    earlier page stated (a provider may send it with the first page only)."""
    total = response.headers.get(total_header or "", "").strip()
    return int(total) if total.isdigit() else last


def last_offset_page(
    response: httpx.Response, total_header: str | None, offset: int, short: bool
) -> bool:
    """Whether the page in ``response`` is the last: the total, else ``Link``, else its size."""
    total = response.headers.get(total_header or "", "").strip()
    if total.isdigit():
        return offset >= int(total)
    link = response.headers.get("Link")
    if link is not None:
        return "next" not in parse_link_header(link)
    return short
