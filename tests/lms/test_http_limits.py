"""LMSHttp and TokenProvider against answers that misbehave on the wire: trickled, oversized,
badly encoded, redirected, or with a next link that is no URL."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from lms.auth import ClientSecretGrant, TokenProvider
from lms.http import LMSHttp
from models.errors import LMSAuthRejected, LMSRequestRejected, LMSUnavailable, ValidationFailed
from tests.lms.fakes.server import FakeLMSServer, Fault, Reply, path_matcher

TOKEN = "s3cr3t-bearer-token-value"
SECRET = "client-s3cr3t-value"
ITEMS = [{"id": n, "name": "x" * 40} for n in range(100)]
BODY = json.dumps(ITEMS).encode()
NOT_GZIP = b"\x1f\x8b\x08\x00garbage-not-gzip"


class WireLMS(FakeLMSServer):
    """An LMS with one list and one token endpoint; faults shape the answers."""

    def __init__(self) -> None:
        super().__init__()
        self.add_routes(
            [
                ("GET", r"/items", lambda _: Reply.json(ITEMS)),
                ("POST", r"/token", lambda _: Reply.json({"access_token": "t0k3n-value"})),
            ]
        )

    def answer(self, reply: Reply, path: str = "/items", times: int = 10) -> None:
        self.inject(Fault(times, reply, match=path_matcher(path, None)))


@pytest.fixture
def lms() -> Iterator[WireLMS]:
    with WireLMS() as server:
        yield server


@pytest.fixture
def http(lms: WireLMS) -> Iterator[LMSHttp]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with LMSHttp(
        lms.base_url, timeout=1.0, max_retries=1, headers=headers, sleep=lambda _: None
    ) as client:
        yield client


@pytest.fixture
def tokens(lms: WireLMS) -> Iterator[TokenProvider]:
    provider = TokenProvider(
        lms.base_url + "/token",
        ClientSecretGrant("tool", SECRET),
        timeout=1.0,
        max_attempts=2,
        sleep=lambda _: None,
    )
    yield provider
    provider.close()


# time -------------------------------------------------------------------------------------


def test_an_answer_trickled_past_the_timeout_is_cut_off_as_a_timeout(
    lms: WireLMS, http: LMSHttp
) -> None:
    """Headers at once, then a byte every 0.25 s: no read ever waited 1 s, so the answer
    (about 10 s long) used to be read to its end, a sync held as long as it trickled."""
    lms.answer(Reply(200, b"[" + b" " * 40 + b"]", trickle=0.25))

    with pytest.raises(LMSUnavailable) as caught:
        http.get_json("/items")

    assert caught.value.message == (
        f"GET {lms.base_url}/items failed after 2 attempt(s): ReadTimeout: no complete answer"
        " within 1 s"
    )
    assert caught.value.details["status_code"] is None  # no answer: the LMS counts as down
    assert len(lms.requests_to("/items")) == 2


def test_a_token_endpoint_that_trickles_its_answer_is_unavailable(
    lms: WireLMS, tokens: TokenProvider
) -> None:
    lms.answer(Reply(200, b'{"access_token": "t0k3n-value"}' + b" " * 40, trickle=0.25), "/token")

    with pytest.raises(LMSUnavailable) as caught:
        tokens.token()

    assert caught.value.message == (
        f"token endpoint {lms.base_url}/token failed 2 time(s) (ReadTimeout)"
    )


HUNG = {
    # Status line and headers one byte every 0.25 s, about 70 s long: each read waits far
    # less than the 1 s timeout, so before the exchange had one deadline nothing cut it off.
    "trickled-head": Reply(200, ITEMS[:1], {"X-Padding": "." * 200}, trickle_head=0.25),
    "silent": Reply(silent=True),
}


@pytest.mark.timeout(20)  # hung here (about 140 s) before the deadline covered the headers
@pytest.mark.parametrize("hang", HUNG)
def test_an_answer_whose_headers_do_not_come_in_time_is_a_timeout(
    lms: WireLMS, http: LMSHttp, hang: str
) -> None:
    lms.answer(HUNG[hang])

    with pytest.raises(LMSUnavailable) as caught:
        http.get_json("/items")

    assert caught.value.message == (
        f"GET {lms.base_url}/items failed after 2 attempt(s): ReadTimeout: no complete answer"
        " within 1 s"
    )
    assert len(lms.requests_to("/items")) == 2


@pytest.mark.timeout(20)
@pytest.mark.parametrize("hang", HUNG)
def test_a_token_endpoint_whose_headers_do_not_come_in_time_is_unavailable(
    lms: WireLMS, tokens: TokenProvider, hang: str
) -> None:
    lms.answer(HUNG[hang], "/token")

    with pytest.raises(LMSUnavailable) as caught:
        tokens.token()

    assert caught.value.message == (
        f"token endpoint {lms.base_url}/token failed 2 time(s) (ReadTimeout)"
    )


@pytest.mark.timeout(20)
def test_the_environments_proxy_is_used_and_bounded_by_the_deadline(
    lms: WireLMS, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``HTTP_PROXY`` still applies (httpx drops it for a client given a transport), and an
    answer trickled through the proxy is cut off at the deadline like a direct one."""
    monkeypatch.setenv("HTTP_PROXY", lms.base_url)
    for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy", "http_proxy"):
        monkeypatch.delenv(name, raising=False)
    with LMSHttp("http://lms.invalid", timeout=1.0, max_retries=1, sleep=lambda _: None) as http:
        assert http.get_json("/items") == ITEMS  # only the proxy (the fake) can answer
        lms.answer(HUNG["trickled-head"])
        with pytest.raises(LMSUnavailable) as caught:
            http.get_json("/items")

    assert "ReadTimeout: no complete answer within 1 s" in caught.value.message
    assert [r.host for r in lms.requests_to("/items")] == ["lms.invalid"] * 3


def test_a_slow_answer_complete_within_the_deadline_is_read(lms: WireLMS) -> None:
    """Headers and body trickled a byte every 10 ms (about 1 s in all): well inside 5 s."""
    lms.answer(Reply(200, ITEMS[:1], trickle=0.01, trickle_head=0.01))
    tokens = TokenProvider(
        lms.base_url + "/token", ClientSecretGrant("tool", SECRET), timeout=5.0, max_attempts=1
    )
    lms.answer(Reply(200, {"access_token": TOKEN}, trickle_head=0.01), "/token")

    with LMSHttp(lms.base_url, timeout=5.0, max_retries=0, auth=tokens.auth()) as http:
        assert http.get_json("/items") == ITEMS[:1]
    tokens.close()
    assert lms.requests_to("/items")[0].headers["authorization"] == f"Bearer {TOKEN}"


# size -------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["announced", "chunked"])
def test_an_answer_above_the_size_limit_is_refused_unread(
    lms: WireLMS, http: LMSHttp, monkeypatch: pytest.MonkeyPatch, chunked: bool
) -> None:
    """A 100 MB body was read into memory whole (about 315 MB resident), an endless chunked
    one until the worker died: past ``MAX_BODY_BYTES`` it is a malformed answer."""
    monkeypatch.setattr("lms.wire.MAX_BODY_BYTES", 2000)
    lms.answer(Reply.json(ITEMS) if not chunked else Reply(200, BODY, chunked=True))

    with pytest.raises(ValidationFailed) as caught:
        http.get_json("/items")

    told = f"{len(BODY)} bytes announced" if not chunked else "more than 2000 bytes sent"
    assert caught.value.message == (
        f"GET {lms.base_url}/items: the answer is too large ({told}; at most 2000 bytes are"
        " read); not read"
    )
    assert len(lms.requests_to("/items")) == 1  # malformed, not retried

    small = ITEMS[:5]  # below the limit, sent the same way: read whole
    lms.faults.clear()
    lms.answer(Reply.json(small) if not chunked else Reply(200, json.dumps(small), chunked=True))
    assert http.get_json("/items") == small


# encoding ---------------------------------------------------------------------------------


def test_a_body_that_does_not_decode_is_a_malformed_answer(lms: WireLMS, http: LMSHttp) -> None:
    """A corrupt gzip raised httpx's ``DecodingError`` through the client: a sync took it
    for an interruption and stopped there, ``failed`` with ``interrupted (DecodingError)``."""
    lms.answer(Reply(200, NOT_GZIP, {"Content-Encoding": "gzip"}))

    with pytest.raises(ValidationFailed) as caught:
        http.get_json("/items")

    assert caught.value.message.startswith(
        f"GET {lms.base_url}/items: the body does not decode as its Content-Encoding 'gzip'"
        " says (Error -3 while decompressing data:"
    )


def test_a_token_answer_that_does_not_decode_is_a_malformed_answer(
    lms: WireLMS, tokens: TokenProvider
) -> None:
    lms.answer(Reply(200, NOT_GZIP, {"Content-Encoding": "gzip"}), "/token")

    with pytest.raises(ValidationFailed, match="does not decode as its Content-Encoding 'gzip'"):
        tokens.token()
    assert len(lms.requests_to("/token")) == 1


# redirects --------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_a_redirect_is_not_followed_and_names_where_it_points(
    lms: WireLMS, http: LMSHttp, status: int
) -> None:
    """It said ``was rejected with HTTP 301: Moved Permanently``, leaving the operator to
    guess where the LMS went; the target's secrets are masked, the request's too."""
    target = f"{lms.other_host()}/items/{TOKEN}?access_token=abc123456"
    lms.answer(Reply(status, b"", {"Location": target}))

    with pytest.raises(LMSRequestRejected) as caught:
        http.get_json("/items")

    shown = f"{lms.other_host()}/items/***?access_token=***"
    assert caught.value.message == (
        f"GET {lms.base_url}/items was redirected with HTTP {status} to {shown}; not followed,"
        " so the credentials are not sent there (if the LMS moved, give its new address)"
    )
    assert lms.requests_from_other_host() == []
    assert len(lms.requests_to("/items")) == 1


def test_a_redirect_of_the_token_endpoint_is_not_followed(
    lms: WireLMS, tokens: TokenProvider
) -> None:
    lms.answer(Reply(307, b"", {"Location": f"{lms.other_host()}/token"}), "/token")

    with pytest.raises(LMSAuthRejected) as caught:
        tokens.token()

    assert caught.value.message == (
        f"token request to {lms.base_url}/token was redirected with HTTP 307 to"
        f" {lms.other_host()}/token; not followed, so the credentials are not sent there (if"
        " the LMS moved, give its new address)"
    )
    assert lms.requests_from_other_host() == []


# next links -------------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["http://[::1/items?page=2", "https://999.999.999.999/items"])
def test_a_next_link_that_is_no_url_fails_the_listing(
    lms: WireLMS, http: LMSHttp, link: str
) -> None:
    """httpx's ``InvalidURL`` came through the client: a sync stopped as interrupted."""
    lms.answer(Reply.json(ITEMS[:1], headers={"Link": f'<{link}>; rel="next"'}))

    with pytest.raises(ValidationFailed) as caught:
        list(http.iter_link_pages("/items"))

    assert caught.value.message.startswith(
        f'GET {lms.base_url}/items: rel="next" is not a valid URL (Invalid '
    )


def test_a_header_line_the_client_refuses_is_quoted_without_its_secrets(
    lms: WireLMS, http: LMSHttp
) -> None:
    """h11 refuses a header with a control character and quotes the whole line, here a next
    link carrying a token: its value is masked, as a log line would mask it."""
    link = '</items?page=2&access_token=abc123456\x00>; rel="next"'
    lms.answer(Reply.json(ITEMS[:1], headers={"Link": link}))

    with pytest.raises(LMSUnavailable) as caught:
        list(http.iter_link_pages("/items"))

    assert "abc123456" not in caught.value.message
    assert "illegal header line: bytearray(b'Link: </items?page=2&access_token=***" in (
        caught.value.message
    )
