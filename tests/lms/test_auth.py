"""TokenProvider, its grants and BearerAuth against a real token endpoint."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import unquote_plus

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from lms.auth import (
    JWT_BEARER_ASSERTION,
    LTI_SCOPES,
    BearerAuth,
    ClientSecretGrant,
    JWTAssertionGrant,
    TokenProvider,
    client_secret_provider,
)
from lms.base import ConnectionConfig, Credentials
from lms.http import LMSHttp
from lms.registry import make_client
from models.errors import ConfigurationError, LMSRequestRejected, LMSUnavailable, ValidationFailed
from tests.lms.fakes.server import FakeLMSServer, RecordedRequest, Reply

SECRET = "s3cr3t:with/odd+chars"


class TokenServer(FakeLMSServer):
    """A token endpoint that answers queued replies first, then issues tokens."""

    name = "token-server"

    def __init__(self, expires_in: Any = 3600) -> None:
        super().__init__()
        self.expires_in = expires_in
        self.queued: list[Reply] = []
        self.add_routes([("POST", r"/token", self._token), ("GET", r"/api/echo", self._echo)])

    @property
    def token_url(self) -> str:
        return self.base_url + "/token"

    def token_requests(self) -> list[RecordedRequest]:
        return self.requests_to("/token")

    def _token(self, request: RecordedRequest) -> Reply:
        if self.queued:
            return self.queued.pop(0)
        body: dict[str, Any] = {"access_token": self.issue_token(), "token_type": "Bearer"}
        if self.expires_in is not None:
            body["expires_in"] = self.expires_in
        return Reply.json(body)

    def _echo(self, request: RecordedRequest) -> Reply:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            return Reply.json({"error": "invalid_token"}, 401)
        return Reply.json({"ok": True})


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def server() -> Iterator[TokenServer]:
    with TokenServer() as running:
        yield running


@pytest.fixture(scope="module")
def key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def pem(key: rsa.RSAPrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return raw.decode()


Factory = Callable[..., TokenProvider]


@pytest.fixture
def provider(server: TokenServer) -> Iterator[Factory]:
    """Providers for ``server``'s endpoint, closed after the test."""
    made: list[TokenProvider] = []

    def make(**kwargs: Any) -> TokenProvider:
        kwargs.setdefault("sleep", lambda _: None)
        grant = kwargs.pop("grant", None) or ClientSecretGrant("client-1", SECRET)
        made.append(TokenProvider(server.token_url, grant, **kwargs))
        return made[-1]

    yield make
    for tokens in made:
        tokens.close()


def test_token_is_fetched_once_for_many_calls(server: TokenServer, provider: Factory) -> None:
    tokens = provider(scopes=["a", "b"])
    with LMSHttp(server.base_url, auth=tokens.auth(), sleep=lambda _: None) as http:
        for _ in range(5):
            assert http.get_json("/api/echo") == {"ok": True}

    assert len(server.token_requests()) == 1
    (echo, *_) = server.requests_to("/api/echo")
    assert echo.headers["authorization"] == f"Bearer {tokens.token()}"
    assert server.token_requests()[0].form()["scope"] == ["a b"]


def test_concurrent_callers_share_one_fetch(server: TokenServer, provider: Factory) -> None:
    tokens = provider()
    barrier = threading.Barrier(8)
    seen: list[str] = []

    def call() -> None:
        barrier.wait()
        seen.append(tokens.token())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(seen)) == 1
    assert len(server.token_requests()) == 1


@pytest.mark.parametrize(("expires_in", "keep", "renew"), [(3600, 3539, 3541), (10, 8.9, 9.1)])
def test_token_is_renewed_shortly_before_expiry(
    server: TokenServer, expires_in: int, keep: float, renew: float, provider: Factory
) -> None:
    server.expires_in = expires_in
    clock = Clock()
    tokens = provider(clock=clock)
    first = tokens.token()

    clock.now += keep
    assert tokens.token() == first
    clock.now += renew - keep
    assert tokens.token() != first
    assert len(server.token_requests()) == 2


def test_missing_expires_in_gets_a_short_default(server: TokenServer, provider: Factory) -> None:
    server.expires_in = None
    clock = Clock()
    tokens = provider(clock=clock)
    first = tokens.token()
    clock.now += 269
    assert tokens.token() == first
    clock.now += 2
    assert tokens.token() != first


def test_unauthorized_renews_the_token_once(server: TokenServer, provider: Factory) -> None:
    tokens = provider()
    http = LMSHttp(
        server.base_url,
        auth=tokens.auth(),
        on_unauthorized=tokens.invalidate,
        sleep=lambda _: None,
    )
    with http:
        http.get_json("/api/echo")
        server.expire_token(tokens.token())
        assert http.get_json("/api/echo") == {"ok": True}

    assert len(server.token_requests()) == 2


def test_basic_grant_form_urlencodes_both_halves(server: TokenServer, provider: Factory) -> None:
    provider().token()

    (request,) = server.token_requests()
    scheme, _, encoded = request.headers["authorization"].partition(" ")
    client_id, _, secret = base64.b64decode(encoded).decode().partition(":")
    assert scheme == "Basic"
    assert (unquote_plus(client_id), unquote_plus(secret)) == ("client-1", SECRET)
    assert request.form() == {"grant_type": ["client_credentials"]}


def test_post_grant_sends_credentials_in_the_form(server: TokenServer, provider: Factory) -> None:
    provider(grant=ClientSecretGrant("client-1", SECRET, method="post")).token()

    (request,) = server.token_requests()
    assert "authorization" not in request.headers
    assert request.form()["client_secret"] == [SECRET]


def test_jwt_assertion_grant(
    server: TokenServer, key: rsa.RSAPrivateKey, provider: Factory
) -> None:
    grant = JWTAssertionGrant("tool-1", pem(key), key_id="kid-7", clock=lambda: 1_800_000_000)
    tokens = provider(grant=grant, scopes=LTI_SCOPES)
    tokens.token()
    tokens.invalidate()
    tokens.token()

    forms = [r.form() for r in server.token_requests()]
    assert {f["client_assertion_type"][0] for f in forms} == {JWT_BEARER_ASSERTION}
    assert forms[0]["scope"] == [" ".join(LTI_SCOPES)]
    assertions = [f["client_assertion"][0] for f in forms]
    claims = [
        jwt.decode(
            a,
            key.public_key(),
            algorithms=["RS256"],
            audience=server.token_url,
            options={"verify_exp": False, "verify_iat": False},
        )
        for a in assertions
    ]
    assert claims[0]["iss"] == claims[0]["sub"] == "tool-1"
    assert (claims[0]["iat"], claims[0]["exp"]) == (1_800_000_000, 1_800_000_300)
    assert claims[0]["jti"] != claims[1]["jti"]
    assert jwt.get_unverified_header(assertions[0]) == {
        "alg": "RS256",
        "kid": "kid-7",
        "typ": "JWT",
    }


def test_jwt_audience_can_be_overridden(key: rsa.RSAPrivateKey) -> None:
    grant = JWTAssertionGrant("tool-1", pem(key), audience="https://platform.example/issuer")
    claims = jwt.decode(
        grant.assertion("https://ignored/token"),
        key.public_key(),
        algorithms=["RS256"],
        audience="https://platform.example/issuer",
    )
    assert claims["aud"] == "https://platform.example/issuer"


def test_bad_private_key_is_a_configuration_error_without_the_key() -> None:
    fake_pem = "-----BEGIN PRIVATE KEY-----\nnot-a-real-key-material\n-----END PRIVATE KEY-----"
    with pytest.raises(ConfigurationError) as caught:
        JWTAssertionGrant("tool-1", fake_pem).assertion("https://lms/token")
    assert "not-a-real-key-material" not in str(caught.value)
    assert caught.value.__cause__ is None


def test_invalid_client_is_rejected_with_the_oauth_error(
    server: TokenServer, provider: Factory
) -> None:
    body = {"error": "invalid_client", "error_description": "Unknown client"}
    server.queued.append(Reply.json(body, 401))

    with pytest.raises(LMSRequestRejected) as caught:
        provider().token()

    assert caught.value.status_code == 401
    assert "invalid_client: Unknown client" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_secret_echoed_by_the_server_is_scrubbed(server: TokenServer, provider: Factory) -> None:
    body = {"error": "invalid_client", "error_description": f"bad secret {SECRET}"}
    server.queued.append(Reply.json(body, 400))

    with pytest.raises(LMSRequestRejected) as caught:
        provider().token()

    assert SECRET not in str(caught.value)
    assert SECRET not in repr(caught.value.details)
    assert "***" in str(caught.value)


class EchoingTokenServer(TokenServer):
    """Refuses every client, quoting the credentials it was sent, as some endpoints do."""

    def _token(self, request: RecordedRequest) -> Reply:
        form = {key: values[0] for key, values in request.form().items()}
        sent = request.headers.get("authorization") or form.get("client_assertion", "")
        return Reply.json({"error": "invalid_client", "error_description": f"bad {sent}"}, 401)


@pytest.mark.parametrize("grant_kind", ["basic", "jwt"])
def test_credentials_quoted_by_the_token_endpoint_are_scrubbed(
    key: rsa.RSAPrivateKey, grant_kind: str
) -> None:
    # The Basic header is base64 of id:secret, and the assertion is as good as the key for
    # its lifetime: neither may reach sync_error_message through the endpoint's refusal.
    with EchoingTokenServer() as echoing:
        grant = (
            ClientSecretGrant("client-1", SECRET)
            if grant_kind == "basic"
            else JWTAssertionGrant("client-1", pem(key))
        )
        tokens = TokenProvider(echoing.token_url, grant, sleep=lambda _: None)
        try:
            with pytest.raises(LMSRequestRejected) as caught:
                tokens.token()
        finally:
            tokens.close()
        request = echoing.token_requests()[0]
        sent = request.headers.get("authorization") or request.form()["client_assertion"][0]
        token_url = echoing.token_url
    credential = sent.removeprefix("Basic ")
    assert len(credential) > 40
    message = str(caught.value)
    assert message.startswith(f"token request to {token_url} rejected (401): invalid_client: bad")
    assert credential not in message and "***" in message


def test_error_without_json_names_the_status(server: TokenServer, provider: Factory) -> None:
    server.queued.append(Reply.text("nope", 403))

    with pytest.raises(LMSRequestRejected, match="HTTP 403"):
        provider().token()


@pytest.mark.parametrize(
    ("reply", "named"),
    [
        (Reply.text("<html>oops</html>"), "not JSON"),
        (Reply.json(["a", "list"]), "not a JSON object"),
        (Reply.json({"token_type": "Bearer"}), "access_token"),
        (Reply.json({"access_token": "t0k3n-value", "token_type": "mac"}), "bearer"),
        (Reply.json({"access_token": "t0k3n-value", "expires_in": "soon"}), "expires_in"),
        (Reply.json({"access_token": "t0k3n-value", "expires_in": 0}), "expires_in"),
        # Python's JSON takes NaN: the token was never renewed before a 401 (nor for Infinity)
        (Reply.json({"access_token": "t0k3n-value", "expires_in": float("nan")}), "expires_in"),
        (Reply.json({"access_token": "t0k3n-value", "expires_in": "Infinity"}), "expires_in"),
    ],
)
def test_malformed_token_responses(
    server: TokenServer, reply: Reply, named: str, provider: Factory
) -> None:
    server.queued.append(reply)

    with pytest.raises(ValidationFailed, match=named) as caught:
        provider().token()
    assert "t0k3n-value" not in str(caught.value)


def test_throttled_and_failing_endpoint_is_retried(server: TokenServer, provider: Factory) -> None:
    server.queued += [Reply.text("busy", 503), Reply.json({}, 429, {"Retry-After": "3"})]
    sleeps: list[float] = []

    assert provider(sleep=sleeps.append).token()
    assert 0.0 <= sleeps[0] <= 0.5  # full jitter
    assert sleeps[1] == 3.0  # Retry-After wins over a shorter backoff
    assert len(server.token_requests()) == 3


def test_endpoint_outage_is_unavailable(server: TokenServer, provider: Factory) -> None:
    server.server_errors(times=10, status=502, path="/token")

    with pytest.raises(LMSUnavailable, match="HTTP 502"):
        provider(max_attempts=3).token()
    assert len(server.token_requests()) == 3


def test_retry_after_beyond_the_cap_gives_up_at_once(
    server: TokenServer, provider: Factory
) -> None:
    server.queued.append(Reply.json({}, 429, {"Retry-After": "120"}))

    with pytest.raises(LMSUnavailable) as caught:
        provider().token()
    assert caught.value.retry_after == 120.0
    assert len(server.token_requests()) == 1


def test_unreachable_endpoint_is_unavailable() -> None:
    with TokenServer() as gone:
        url = gone.token_url
    tokens = TokenProvider(url, ClientSecretGrant("c", SECRET), sleep=lambda _: None, timeout=2)

    with pytest.raises(LMSUnavailable) as caught:
        tokens.token()
    tokens.close()
    assert SECRET not in str(caught.value)


def test_reprs_never_show_secrets_or_tokens(
    server: TokenServer, key: rsa.RSAPrivateKey, provider: Factory
) -> None:
    secret_grant = ClientSecretGrant("client-1", SECRET)
    key_grant = JWTAssertionGrant("tool-1", pem(key))
    tokens = provider(grant=secret_grant)
    token = tokens.token()
    texts = [
        repr(secret_grant),
        repr(key_grant),
        repr(tokens),
        repr(BearerAuth(tokens)),
        repr(tokens._cached),
        repr(Credentials(client_id="c", client_secret=SECRET, private_key_pem=pem(key))),
    ]
    for text in texts:
        assert SECRET not in text
        assert token not in text
        assert "PRIVATE KEY" not in text


def test_reprs_mask_a_password_an_older_version_stored_in_an_endpoint() -> None:
    config = ConnectionConfig(
        platform="blackboard",
        base_url="https://admin:S3cret@bb.example.edu",
        credentials=Credentials(client_id="c", client_secret=SECRET),
        token_endpoint="https://svc:S3cret2@idp.example.edu/token",
        options={"proxy": "http://p:S3cret3@proxy.example.edu:3128"},
    )
    client = make_client(config)
    texts = [repr(config), repr(client.tokens), repr(client.http)]
    client.close()
    assert all("S3cret" not in text and SECRET not in text for text in texts), texts
    assert "base_url='https://admin:***@bb.example.edu'" in texts[0]
    assert "'http://p:***@proxy.example.edu:3128'" in texts[0]
    assert texts[1].startswith("TokenProvider(token_url='https://svc:***@idp.example.edu/token'")


def test_missing_settings_are_named() -> None:
    with pytest.raises(ConfigurationError, match="client_id"):
        client_secret_provider("https://lms/token", None, SECRET)
    with pytest.raises(ConfigurationError, match="client_secret"):
        client_secret_provider("https://lms/token", "c", "")
    with pytest.raises(ConfigurationError, match="token endpoint"):
        TokenProvider("", ClientSecretGrant("c", SECRET))
