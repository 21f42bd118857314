"""OAuth2 client-credentials tokens for Blackboard, LTI Advantage and OneRoster.

A sync makes hundreds of calls with one token, so the token is fetched once,
cached, renewed shortly before it expires and dropped on demand when the LMS
answers 401 (``TokenProvider.invalidate`` is wired to ``LMSHttp``'s
``on_unauthorized``).  Two ways to prove who we are exist: a client secret
(HTTP Basic or form fields, as each platform documents) and the LTI 1.3
signed JWT client assertion.  Secrets, assertions and tokens never appear in
an exception message or a ``repr``.
"""

from __future__ import annotations

import abc
import base64
import math
import random
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

import httpx
import jwt

from lms.base import ConnectionConfig
from lms.deadline import bounded_client
from lms.http import LMSHttp, retry_after_seconds
from lms.messages import redirect_message, scrub, secrets_of
from lms.wire import send_bounded
from models.errors import (
    ConfigurationError,
    LMSAuthRejected,
    LMSUnavailable,
    ValidationFailed,
)
from models.redaction import redact

JWT_BEARER_ASSERTION = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

AGS_SCOPES: tuple[str, ...] = (
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem",
    "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/result.readonly",
    "https://purl.imsglobal.org/spec/lti-ags/scope/score",
)
NRPS_SCOPES: tuple[str, ...] = (
    "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly",
)
LTI_SCOPES: tuple[str, ...] = AGS_SCOPES + NRPS_SCOPES

_DEFAULT_EXPIRES_IN = 300.0
_SENT_SECRETS = ("client_secret", "client_assertion")
"""Form fields of a token request that prove who we are (the JWT assertion is as good as
the key for its lifetime)."""


class Grant(abc.ABC):
    """How the client authenticates itself at the token endpoint."""

    client_id: str

    @abc.abstractmethod
    def request_parts(
        self, token_url: str, scopes: tuple[str, ...]
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Return the form fields and extra headers of one token request."""

    @abc.abstractmethod
    def secrets(self) -> tuple[str, ...]:
        """Values that must be scrubbed from anything we report."""


@dataclass(frozen=True)
class ClientSecretGrant(Grant):
    """``client_credentials`` with a shared secret.

    ``method="basic"`` sends ``Authorization: Basic`` (RFC 6749 2.3.1, used by
    Blackboard); ``method="post"`` sends ``client_id``/``client_secret`` as form
    fields, which some OneRoster providers require instead.
    """

    client_id: str
    client_secret: str = field(repr=False)
    method: Literal["basic", "post"] = "basic"

    def request_parts(
        self,
        token_url: str,  # noqa: ARG002 - a shared secret does not depend on the endpoint
        scopes: tuple[str, ...],
    ) -> tuple[dict[str, str], dict[str, str]]:
        form = {"grant_type": "client_credentials"}
        if scopes:
            form["scope"] = " ".join(scopes)
        if self.method == "post":
            form["client_id"] = self.client_id
            form["client_secret"] = self.client_secret
            return form, {}
        # RFC 6749 2.3.1: both halves are form-urlencoded before base64.
        pair = f"{quote(self.client_id, safe='')}:{quote(self.client_secret, safe='')}"
        basic = base64.b64encode(pair.encode()).decode("ascii")
        return form, {"Authorization": f"Basic {basic}"}

    def secrets(self) -> tuple[str, ...]:
        return (self.client_secret,)


@dataclass(frozen=True)
class JWTAssertionGrant(Grant):
    """LTI 1.3 ``client_credentials`` with a JWT signed RS256 by the tool's key.

    Each request gets a fresh assertion with a unique ``jti`` so a platform
    that rejects replays never sees the same one twice.
    """

    client_id: str
    private_key_pem: str = field(repr=False)
    key_id: str | None = None
    audience: str | None = None
    lifetime_seconds: int = 300
    clock: Callable[[], float] = field(default=time.time, repr=False, compare=False)

    def assertion(self, token_url: str) -> str:
        now = int(self.clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": self.audience or token_url,
            "iat": now,
            "exp": now + self.lifetime_seconds,
            "jti": uuid.uuid4().hex,
        }
        headers = {"kid": self.key_id} if self.key_id else None
        try:
            return jwt.encode(claims, self.private_key_pem, algorithm="RS256", headers=headers)
        except (ValueError, TypeError, jwt.PyJWTError) as exc:
            # The key's text must not leak through the library's message.
            raise ConfigurationError(
                f"the LTI private key of client {self.client_id!r} cannot sign RS256 "
                f"({type(exc).__name__})"
            ) from None

    def request_parts(
        self, token_url: str, scopes: tuple[str, ...]
    ) -> tuple[dict[str, str], dict[str, str]]:
        form = {
            "grant_type": "client_credentials",
            "client_assertion_type": JWT_BEARER_ASSERTION,
            "client_assertion": self.assertion(token_url),
        }
        if scopes:
            form["scope"] = " ".join(scopes)
        return form, {}

    def secrets(self) -> tuple[str, ...]:
        return (self.private_key_pem,)


@dataclass
class _CachedToken:
    value: str = field(repr=False)
    renew_at: float


class TokenProvider:
    """Fetches, caches and renews one access token; safe to share across threads."""

    def __init__(
        self,
        token_url: str,
        grant: Grant,
        *,
        scopes: Iterable[str] = (),
        timeout: float = 30.0,
        max_attempts: int = 4,
        renew_margin: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        transport: httpx.BaseTransport | None = None,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
    ) -> None:
        if not token_url:
            raise ConfigurationError("the token endpoint is not configured")
        self.token_url = token_url
        self._where = redact(token_url)
        self.grant = grant
        self.scopes = tuple(scopes)
        self._max_attempts = max(1, max_attempts)
        self._renew_margin = renew_margin
        self._clock = clock
        self._sleep = sleep
        self._backoff = (backoff_base, backoff_cap)
        self._lock = threading.Lock()
        self._cached: _CachedToken | None = None
        self._client = bounded_client(timeout=timeout, transport=transport)
        self._deadline = timeout

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(token_url={self._where!r}, "
            f"client_id={self.grant.client_id!r}, grant={type(self.grant).__name__})"
        )

    def token(self) -> str:
        """A token valid for a while yet; fetches one only when needed."""
        with self._lock:
            cached = self._cached
            if cached is None or self._clock() >= cached.renew_at:
                cached = self._fetch()
                self._cached = cached
            return cached.value

    def invalidate(self) -> None:
        """Forget the cached token, e.g. after the LMS answered 401."""
        with self._lock:
            self._cached = None

    def auth(self) -> BearerAuth:
        return BearerAuth(self)

    def close(self) -> None:
        self._client.close()

    def _fetch(self) -> _CachedToken:
        """POST to the token endpoint, retrying outages with full-jitter backoff."""
        base, cap = self._backoff
        for attempt in range(1, self._max_attempts + 1):
            form, headers = self.grant.request_parts(self.token_url, self.scopes)
            headers["Accept"] = "application/json"
            try:
                request = self._client.build_request(
                    "POST", self.token_url, data=form, headers=headers
                )
                response = send_bounded(self._client, request, self._deadline)
            except httpx.HTTPError as exc:
                failure, wait = type(exc).__name__, None
            else:
                if not _transient(response.status_code):
                    return self._accept(response, [form.get(name, "") for name in _SENT_SECRETS])
                failure, wait = f"HTTP {response.status_code}", retry_after_seconds(response)
            delay = random.uniform(0.0, min(cap, base * 2 ** (attempt - 1)))
            if wait is not None:
                delay = max(delay, wait)
            if attempt == self._max_attempts or delay > cap:
                raise LMSUnavailable(
                    f"token endpoint {self._where} failed {attempt} time(s) ({failure})",
                    retry_after=wait,
                )
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _accept(self, response: httpx.Response, sent: list[str]) -> _CachedToken:
        if response.has_redirect_location:  # not followed: the secret would go along
            moved = redirect_message(response, ())
            raise LMSAuthRejected(
                f"token request to {self._where} {self._scrub(moved, response.request, sent)}",
                status_code=response.status_code,
            )
        body = _json_object(response)
        if response.status_code >= 400:
            error = str(body.get("error") or f"HTTP {response.status_code}")
            description = body.get("error_description")
            detail = f"{error}: {description}" if description else error
            raise LMSAuthRejected(
                f"token request to {self._where} rejected ({response.status_code}): "
                f"{self._scrub(detail, response.request, sent)}",
                status_code=response.status_code,
            )
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise ValidationFailed(
                f"token response from {self._where} has no access_token",
                errors=["access_token: missing"],
            )
        token_type = body.get("token_type", "bearer")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise ValidationFailed(
                f"token response from {self._where}: token_type {token_type!r} is not bearer",
                errors=["token_type: not bearer"],
            )
        lifetime = _expires_in(body.get("expires_in"), self._where)
        margin = min(self._renew_margin, lifetime / 10)
        return _CachedToken(value=token, renew_at=self._clock() + lifetime - margin)

    def _scrub(self, text: str, request: httpx.Request, sent: list[str]) -> str:
        """``text`` without the grant's secrets nor what carried them: an endpoint that
        quotes the ``Authorization: Basic`` header (base64 of ``id:secret``) or the signed
        assertion it refused would otherwise hand them to the error message."""
        secrets = [secret for secret in self.grant.secrets() if secret]
        return scrub(text, [*secrets_of(request, sent), *secrets])


class BearerAuth(httpx.Auth):
    """Adds ``Authorization: Bearer <token>`` from a ``TokenProvider``."""

    def __init__(self, provider: TokenProvider) -> None:
        self.provider = provider

    def __repr__(self) -> str:
        return f"BearerAuth({self.provider!r})"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.provider.token()}"
        yield request


def client_secret_provider(
    token_url: str,
    client_id: str | None,
    client_secret: str | None,
    *,
    method: Literal["basic", "post"] = "basic",
    **kwargs: Any,
) -> TokenProvider:
    """A provider for a secret-based integration, naming what is missing."""
    if not client_id:
        raise ConfigurationError("credentials.client_id is required")
    if not client_secret:
        raise ConfigurationError("credentials.client_secret is required")
    return TokenProvider(token_url, ClientSecretGrant(client_id, client_secret, method), **kwargs)


def _transient(status: int) -> bool:
    return status in (408, 429) or status >= 500


def _json_object(response: httpx.Response) -> Mapping[str, Any]:
    try:
        body = response.json()
    except ValueError:
        if response.status_code >= 400:
            return {}
        raise ValidationFailed(
            f"token response from {redact(str(response.request.url))} is not JSON",
            errors=["body: not JSON"],
        ) from None
    if not isinstance(body, dict):
        if response.status_code >= 400:
            return {}
        raise ValidationFailed(
            f"token response from {redact(str(response.request.url))} is not a JSON object",
            errors=["body: not an object"],
        )
    return body


def _expires_in(value: Any, url: str) -> float:
    if value is None:
        return _DEFAULT_EXPIRES_IN
    try:
        lifetime = float(value)
    except (TypeError, ValueError):
        lifetime = -1.0
    if not math.isfinite(lifetime) or lifetime <= 0:  # NaN or inf: never renewed before a 401
        raise ValidationFailed(
            f"token response from {url}: expires_in {value!r} is not a positive finite number",
            errors=["expires_in: not a positive finite number"],
        )
    return lifetime


def token_http(
    config: ConnectionConfig,
    tokens: TokenProvider,
    *,
    sleep: Callable[[float], None] = time.sleep,
    transport: httpx.BaseTransport | None = None,
) -> LMSHttp:
    """The HTTP layer of a token-authenticated client: bearer auth, renewal on 401."""
    return LMSHttp(
        config.base_url,
        timeout=config.timeout_seconds,
        max_retries=config.max_retries,
        auth=tokens.auth(),
        on_unauthorized=tokens.invalidate,
        sleep=sleep,
        transport=transport,
    )
