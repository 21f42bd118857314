"""The HTTP layer every LMS client shares: retries, throttling, paging, errors.

Clients speak platform shapes; this module speaks HTTP.  It owns the policy
that keeps a sync safe to rerun and polite to a school's LMS: bounded retries
with full-jitter backoff that honour ``Retry-After``, one token renewal on
401, a pause when Canvas says its cost bucket is nearly empty, and error
messages that name the URL but never a secret.  ``request`` retries every
method; grade writes go through ``checked_write``, which re-reads the LMS
before trying a write again, because a write whose answer was lost may have
landed.  The paging rules ``iter_link_pages`` and ``iter_offset_pages`` follow
(whose next page, when to stop) are ``lms.paging``'s.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import math
import random
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TypeVar

import httpx

from lms.deadline import bounded_client
from lms.messages import lms_message, redirect_message, require_object, scrub, secrets_of
from lms.pacing import RollingWindow
from lms.paging import (
    PageRepeats,
    cut_short,
    last_offset_page,
    more_promised,
    next_page_url,
    page_key,
    parse_link_header,
    stated_total,
)
from lms.wire import send_bounded
from models.errors import LMSAuthRejected, LMSRequestRejected, LMSUnavailable, ValidationFailed
from models.redaction import SECRET_PARAMS, redact

log = logging.getLogger(__name__)
T = TypeVar("T")

_CANVAS_THROTTLED = "Rate Limit Exceeded"


def credentials_refused(response: httpx.Response) -> bool:
    """Whether a final refusal means the LMS refused the credentials (HTTP 401), not one
    resource: ``LMSAuthRejected``, on which a sync stops instead of failing each course."""
    return response.status_code == 401


def retry_after_seconds(response: httpx.Response) -> float | None:
    """Seconds the server asked us to wait, from delta-seconds or an HTTP date."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - dt.datetime.now(dt.UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def server_wait(exc: BaseException) -> float | None:
    """The wait the LMS itself asked for (``Retry-After``) that ``exc`` carries, else ``None``.

    ``LMSHttp`` keeps it in ``server_retry_after`` (its ``retry_after`` may be
    its own backoff hint); a token endpoint's ``LMSUnavailable`` (``lms.auth``)
    has no such detail and carries only the server's wish in ``retry_after``.
    """
    if not isinstance(exc, LMSUnavailable):
        return None
    wait = exc.details.get("server_retry_after", exc.retry_after)
    return float(wait) if isinstance(wait, int | float) else None


def unreachable(exc: BaseException) -> bool:
    """A timeout, a refused connection or a 5xx through every retry: the LMS is down."""
    if not isinstance(exc, LMSUnavailable):
        return False
    status = exc.details.get("status_code")
    return status is None or (isinstance(status, int) and status >= 500)


class LMSHttp:
    """One connection pool to one LMS, with the retry and paging policy.

    One instance per client and run; it is not meant to be shared across threads.
    ``throttle_threshold`` turns on the pause for ``X-Rate-Limit-Remaining``.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 30.0,
        max_retries: int = 5,
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        on_unauthorized: Callable[[], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        throttle_threshold: int | None = None,
        refused: Callable[[httpx.Response], bool] = credentials_refused,
        pacer: RollingWindow | None = None,
    ) -> None:
        """``refused``: whether a 4xx means refused credentials (``credentials_refused``);
        a platform that answers 401 for one resource too (Canvas) tells them apart.
        ``pacer``: waited on before each send, retries too (``lms.pacing``: Schoology)."""
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.base_url = base_url
        self._client = bounded_client(
            base_url=base_url, timeout=timeout, auth=auth, headers=headers, transport=transport
        )
        self._deadline = timeout
        self._max_retries = max_retries
        self._on_unauthorized = on_unauthorized
        self._sleep = sleep
        self._backoff_base = backoff_base
        self._backoff_cap = backoff_cap
        self._throttle_threshold = throttle_threshold
        self._refused = refused
        self._pacer = pacer
        self._pending_pause = 0.0
        self._single_attempt = False

    def __repr__(self) -> str:
        return f"LMSHttp(base_url={redact(self.base_url)!r})"

    def __enter__(self) -> LMSHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def request(
        self,
        method: str,
        url: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """Send with retries; return a 2xx response or raise an ``LMS*`` error."""
        form_secrets = [
            str(value) for key, value in (data or {}).items() if key.lower() in SECRET_PARAMS
        ]
        attempts = 0
        renewed = False
        while True:
            self._pause_if_throttled()
            if self._pacer is not None:
                self._pacer.wait()
            request = self._client.build_request(
                method, url, params=params, json=json, data=data, headers=headers
            )
            response, reason = self._send(request, form_secrets)
            retry_after: float | None = None
            if response is not None:
                self._note_budget(response)
                if response.status_code == 401 and not renewed and self._on_unauthorized:
                    renewed = True
                    log.info("%s %s: 401, renewing credentials", method, redact(str(request.url)))
                    self._on_unauthorized()
                    continue
                transient = _transient_reason(response)
                if transient is None:
                    if response.status_code >= 300:
                        raise self._rejected(response, form_secrets)
                    return response
                reason, retry_after = transient, retry_after_seconds(response)
            attempts += 1
            delay = self._delay(attempts, retry_after)
            if self._single_attempt or attempts > self._max_retries or delay is None:
                status = None if response is None else response.status_code
                raise self._unavailable(request, reason, attempts, retry_after, status)
            delay, self._pending_pause = max(delay, self._pending_pause), 0.0
            where = f"{method} {redact(str(request.url))}"
            log.warning("%s: %s; retry %d in %.2fs", where, reason, attempts, delay)
            self._sleep(delay)

    def checked_write(self, check: Callable[[], T | None], write: Callable[[], T]) -> T:
        """Run ``write`` unless ``check`` finds it done; before any retry, ``check`` again.

        Each ``write`` gets one attempt: when it fails transiently (a timeout
        may hide a write that landed), the retry starts with ``check``, so a
        grade lands once however its answers get lost.
        """
        attempts = 0
        while True:
            done = check()
            if done is not None:
                return done
            self._single_attempt = True
            try:
                return write()
            except LMSUnavailable as exc:
                attempts += 1
                delay = self._delay(attempts, exc.details.get("server_retry_after"))
                if attempts > self._max_retries or delay is None:
                    raise
                log.warning("write failed (%s); re-checking in %.2fs", exc.message, delay)
                self._sleep(delay)
            finally:
                self._single_attempt = False

    def get_json(self, url: str, *, params: Mapping[str, Any] | None = None) -> Any:
        """GET and parse a JSON body (an empty body is malformed here)."""
        return self.decode(self.request("GET", url, params=params), allow_empty=False)

    def send_json(
        self,
        method: str,
        url: str,
        *,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> Any:
        """Send a write and parse its body if there is one, else ``None``."""
        response = self.request(method, url, json=json, data=data, headers=headers)
        return self.decode(response, allow_empty=True)

    def decode(self, response: httpx.Response, *, allow_empty: bool = False) -> Any:
        """The JSON body of ``response``, or ``ValidationFailed`` naming its URL."""
        if allow_empty and not response.content.strip():
            return None
        try:
            return response.json()
        except ValueError:
            # The body is not quoted: a broken roster page may hold students' names, and
            # this message ends up in logs and lms_integrations.sync_error_message.
            raise ValidationFailed(
                f"{response.request.method} {redact(str(response.request.url))} returned "
                f"{len(response.content)} bytes that are not JSON (HTTP {response.status_code}, "
                f"Content-Type {response.headers.get('Content-Type', 'none')!r})"
            ) from None

    def iter_link_pages(
        self, url: str, *, params: Mapping[str, Any] | None = None
    ) -> Iterator[list[Any]]:
        """Yield JSON-list pages, following ``Link: rel="next"`` until it is absent.

        ``rel="last"`` is never needed: Canvas leaves it out when counting is costly.
        A ``next`` on another host is refused (``next_page_url``), and so is one back
        to a page already read (its query compared as parsed, ``page_key``: a link's
        ``?page=1&per_page=2`` is the first request's ``?per_page=100``), or a page of
        records all read already (``PageRepeats``).
        """
        next_url: str | None = url
        page_params = params
        seen: set[tuple[Any, ...]] = set()
        repeats = PageRepeats()
        while next_url is not None:
            response = self.request("GET", next_url, params=page_params)
            where = f"GET {redact(str(response.request.url))}"
            page = self.decode(response)
            if not isinstance(page, list):
                raise ValidationFailed(
                    f"{where}: expected a JSON list page, got {type(page).__name__}"
                )
            repeats.check(page, where, cause="the server ignores the page asked for")
            yield page
            seen.add(page_key(response.request.url))
            following = parse_link_header(response.headers.get("Link", "")).get("next")
            if following is not None:
                target = next_page_url(response.request.url, following, 'rel="next"')
                if page_key(target) in seen:
                    raise ValidationFailed(f"{where}: rel=next points back to a page already read")
                following = str(target)
            next_url, page_params = following, None

    def iter_offset_pages(
        self,
        url: str,
        *,
        items_key: str | None,
        params: Mapping[str, Any] | None = None,
        limit: int = 100,
        limit_param: str = "limit",
        offset_param: str = "offset",
        total_header: str | None = "X-Total-Count",
    ) -> Iterator[list[Any]]:
        """Yield pages of ``limit``/``offset`` paging until the data runs out.

        Stops once ``offset`` reaches the total header, or, without a total, on
        a ``Link`` header without ``rel="next"``.  A short page ends paging only
        when the server says neither, because a server may cap ``limit`` below
        what was asked.  An empty page ends it too, unless the server still
        promises more (a total not reached, a ``rel="next"``): a page lost to
        the server's hiccup fails the listing (``cut_short``), or a sync would
        take every record after it for gone.  A page of records all read
        already is refused: the server ignores ``offset`` (``PageRepeats``).
        """
        offset = 0
        total: int | None = None
        repeats = PageRepeats()
        while True:
            query = {**(params or {}), limit_param: limit, offset_param: offset}
            response = self.request("GET", url, params=query)
            items = self._page_items(response, items_key)
            where = f"GET {redact(str(response.request.url))}"
            total = stated_total(response, total_header, total)
            if not items:
                promise = more_promised(response, total_header, offset, total)
                if promise is not None:
                    raise cut_short(where, f"{offset_param} {offset}", promise)
                return
            repeats.check(items, where, f" at {offset_param} {offset}",
                          f"the server ignores {offset_param}")  # fmt: skip
            yield items
            offset += len(items)
            if last_offset_page(response, total_header, offset, len(items) < limit):
                return

    def _page_items(self, response: httpx.Response, items_key: str | None) -> list[Any]:
        body = self.decode(response)
        where = f"GET {redact(str(response.request.url))}"
        if items_key is not None:
            body = require_object(body, where).get(items_key, [])
        if not isinstance(body, list):
            raise ValidationFailed(
                f"{where}: expected a JSON list of items, got {type(body).__name__}"
            )
        return body

    def _send(
        self, request: httpx.Request, form_secrets: list[str]
    ) -> tuple[httpx.Response | None, str]:
        """The response, or ``None`` and why the exchange failed (scrubbed)."""
        try:
            return send_bounded(self._client, request, self._deadline), ""
        except httpx.TransportError as exc:
            # h11 quotes a header line it refuses, next-page link and its tokens included.
            detail = redact(scrub(str(exc), secrets_of(request, form_secrets)))
            return None, f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__

    def _pause_if_throttled(self) -> None:
        if self._pending_pause > 0:
            pause, self._pending_pause = self._pending_pause, 0.0
            log.info("LMS rate-limit budget is low; pausing %.2fs", pause)
            self._sleep(pause)

    def _note_budget(self, response: httpx.Response) -> None:
        """Plan a pause when Canvas's cost bucket runs low (a little, scaled by the shortfall)."""
        if self._throttle_threshold is None or self._throttle_threshold <= 0:
            return
        try:
            remaining = float(response.headers["X-Rate-Limit-Remaining"])
        except (KeyError, ValueError):
            return
        if remaining < self._throttle_threshold:
            shortfall = min(1.0, (self._throttle_threshold - remaining) / self._throttle_threshold)
            self._pending_pause = min(self._backoff_cap, self._backoff_base * (1.0 + shortfall))

    def _delay(self, attempt: int, retry_after: float | None) -> float | None:
        """Full-jitter backoff; ``None`` when the server wants longer than we wait in-process."""
        ceiling = min(self._backoff_cap, self._backoff_base * 2 ** min(attempt - 1, 32))
        delay = random.uniform(0.0, ceiling)
        if retry_after is not None:
            if retry_after > self._backoff_cap:
                return None
            delay = max(delay, retry_after)
        return delay

    def _rejected(self, response: httpx.Response, form_secrets: list[str]) -> LMSRequestRejected:
        secrets = secrets_of(response.request, form_secrets)
        where = f"{response.request.method} {redact(str(response.request.url))}"
        if response.has_redirect_location:  # never followed: it would take the credentials along
            return LMSRequestRejected(
                f"{where} {redirect_message(response, secrets)}", status_code=response.status_code
            )
        message = scrub(lms_message(response), secrets)
        kind = LMSAuthRejected if self._refused(response) else LMSRequestRejected
        return kind(
            f"{where} was rejected with HTTP {response.status_code}: {message}",
            status_code=response.status_code,
        )

    def _unavailable(
        self,
        request: httpx.Request,
        reason: str,
        attempts: int,
        retry_after: float | None,
        status_code: int | None,
    ) -> LMSUnavailable:
        """``retry_after`` is the server's wish, else the next backoff ceiling, as a hint.

        ``status_code`` is the last answer's (``None``: no answer, a transport error).
        """
        hint = min(self._backoff_cap, self._backoff_base * 2 ** min(attempts, 32))
        return LMSUnavailable(
            f"{request.method} {redact(str(request.url))} failed after {attempts} "
            f"attempt(s): {reason}",
            retry_after=hint if retry_after is None else retry_after,
            server_retry_after=retry_after,
            status_code=status_code,
        )


def _transient_reason(response: httpx.Response) -> str | None:
    """Why ``response`` is worth retrying, or ``None`` when it is final."""
    status = response.status_code
    if status in (408, 429) or status >= 500:
        return f"HTTP {status} {response.reason_phrase}".strip()
    if status == 403 and _CANVAS_THROTTLED in response.text:
        return "HTTP 403 Rate Limit Exceeded"
    return None
