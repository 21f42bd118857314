"""LMSHttp over real sockets: retries, throttling, paging, errors and secrets."""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
from collections.abc import Callable, Generator, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from lms.http import LMSHttp, retry_after_seconds
from lms.paging import parse_link_header
from models.errors import LMSRequestRejected, LMSUnavailable, ValidationFailed
from models.redaction import redact
from tests.lms.fakes import FakeLMSServer, RecordedRequest, Reply
from tests.lms.fakes.server import Fault

SECRET_TOKEN = "s3cr3t-bearer-token-value"
SECRET_WSTOKEN = "moodle-ws-token-0123456789"


class EchoLMS(FakeLMSServer):
    """A generic LMS: list endpoints in both paging styles, error shapes, an auth gate."""

    def __init__(self, items: int = 0) -> None:
        super().__init__()
        self.items = [{"id": n} for n in range(items)]
        self.with_last = True
        self.with_total = True
        self.relative_next = False
        self.ignore_page = False
        """Every page is the first, though the next link moves on (``page=2``, ``page=3``)."""
        self.error_body: Reply = Reply.json({"message": "nope"}, 400)
        self.remaining = "700"
        self.value: Any = None
        self.writes = 0
        self.add_routes(
            [
                ("GET", r"/ok", lambda _: Reply.json({"ok": True}, headers=self._budget())),
                ("PUT", r"/echo", lambda r: Reply.json({"got": r.json()})),
                ("POST", r"/form", lambda r: Reply.json({"form": r.form()})),
                ("DELETE", r"/gone", lambda _: Reply(204)),
                ("GET", r"/text", lambda _: Reply.text("<html>maintenance</html>")),
                ("GET", r"/linked", self._linked),
                ("GET", r"/offset", self._offset),
                ("GET", r"/error", lambda _: self.error_body),
                ("POST", r"/error", lambda _: self.error_body),
                ("GET", r"/secure", self._secure),
                ("GET", r"/object", lambda _: Reply.json({"not": "a list"})),
                ("GET", r"/loop", self._loop),
                ("GET", r"/value", lambda _: Reply.json({"value": self.value})),
                ("PUT", r"/value", self._put_value),
            ]
        )

    def _budget(self) -> dict[str, str]:
        return {"X-Rate-Limit-Remaining": self.remaining}

    def _linked(self, request: RecordedRequest) -> Reply:
        per_page = int(request.arg("per_page") or 10)
        page = 1 if self.ignore_page else int(request.arg("page") or 1)
        following = int(request.arg("page") or 1) + 1
        last = max(1, -(-len(self.items) // per_page))
        links = []
        if page < last:
            query = urlencode({"page": following, "per_page": per_page})
            prefix = "" if self.relative_next else self.base_url
            links.append(f'<{prefix}/linked?{query}>; rel="next"')
        if self.with_last:
            links.append(f'<{self.base_url}/linked?page={last}&per_page={per_page}>; rel="last"')
        chunk = self.items[(page - 1) * per_page : page * per_page]
        return Reply.json(chunk, headers={"Link": ", ".join(links)} if links else {})

    def _offset(self, request: RecordedRequest) -> Reply:
        limit, offset = int(request.arg("limit") or 10), int(request.arg("offset") or 0)
        headers = {"X-Total-Count": str(len(self.items))} if self.with_total else {}
        return Reply.json({"data": self.items[offset : offset + limit]}, headers=headers)

    def _secure(self, request: RecordedRequest) -> Reply:
        token = request.headers.get("authorization", "").removeprefix("Bearer ")
        if token not in self.tokens:
            body = {"error": "invalid_token", "error_description": f"token {token} expired"}
            return Reply.json(body, 401)
        return Reply.json({"ok": True})

    def _put_value(self, request: RecordedRequest) -> Reply:
        self.value = request.json()["value"]
        self.writes += 1
        return Reply.json({"value": self.value})

    def _loop(self, request: RecordedRequest) -> Reply:
        return Reply.json([1], headers={"Link": f'<{self.base_url}/loop>; rel="next"'})


class SwappableBearer(httpx.Auth):
    """A bearer token that ``on_unauthorized`` can replace, like a token provider."""

    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = f"Bearer {self.token}"
        yield request


@pytest.fixture
def lms() -> Iterator[EchoLMS]:
    with EchoLMS(items=95) as server:
        yield server


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_http(lms: EchoLMS, sleeps: list[float]) -> Iterator[Callable[..., LMSHttp]]:
    made: list[LMSHttp] = []

    def make(**kwargs: Any) -> LMSHttp:
        kwargs.setdefault("sleep", sleeps.append)
        kwargs.setdefault("timeout", 2.0)
        http = LMSHttp(kwargs.pop("base_url", lms.base_url), **kwargs)
        made.append(http)
        return http

    yield make
    for http in made:
        http.close()


def assert_secret_free(exc: BaseException, *secrets: str) -> None:
    for text in (str(exc), repr(exc), str(getattr(exc, "message", ""))):
        for secret in secrets:
            assert secret not in text


# pure helpers -----------------------------------------------------------------


def test_parse_link_header_reads_every_rel() -> None:
    value = (
        '<https://x.test/api/v1/courses?page=2&per_page=10>; rel="next", '
        '<https://x.test/api/v1/courses?page=1&per_page=10>; rel="current first", '
        "<https://x.test/api/v1/courses?page=9&per_page=10>; rel=last"
    )
    links = parse_link_header(value)
    assert links["next"].endswith("page=2&per_page=10")
    assert links["current"] == links["first"]
    assert links["last"].endswith("page=9&per_page=10")


def test_parse_link_header_without_last_or_at_all() -> None:
    assert set(parse_link_header('<https://x.test/a?page=bookmark:xyz>; rel="next"')) == {"next"}
    assert parse_link_header("") == {}


def test_retry_after_reads_seconds_and_http_dates() -> None:
    def response(value: str) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": value})

    assert retry_after_seconds(response("7")) == 7.0
    later = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=120)
    from_date = retry_after_seconds(response(email.utils.format_datetime(later, usegmt=True)))
    assert from_date is not None and 100 < from_date <= 120
    past = email.utils.format_datetime(dt.datetime(2000, 1, 1, tzinfo=dt.UTC), usegmt=True)
    assert retry_after_seconds(response(past)) == 0.0
    assert retry_after_seconds(response("soon")) is None
    assert retry_after_seconds(httpx.Response(429)) is None


# success paths ------------------------------------------------------------------


def test_relative_and_absolute_urls(lms: EchoLMS, make_http: Callable[..., LMSHttp]) -> None:
    http = make_http(base_url=lms.base_url + "/prefix-is-ignored-for-absolute")
    assert http.get_json(lms.base_url + "/ok") == {"ok": True}
    http = make_http()
    assert http.get_json("/ok") == {"ok": True}
    assert http.send_json("PUT", "/echo", json={"a": 1}) == {"got": {"a": 1}}
    assert http.send_json("POST", "/form", data={"k": "v"}) == {"form": {"k": ["v"]}}
    assert http.send_json("DELETE", "/gone") is None


def test_link_paging_without_rel_last(lms: EchoLMS, make_http: Callable[..., LMSHttp]) -> None:
    lms.with_last = False
    pages = list(make_http().iter_link_pages("/linked", params={"per_page": 10}))
    assert [len(page) for page in pages] == [10] * 9 + [5]
    assert [item["id"] for page in pages for item in page] == list(range(95))
    assert len(lms.requests_to("/linked")) == 10


def test_link_paging_many_pages_and_relative_next(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    lms.items = [{"id": n} for n in range(250)]
    lms.relative_next = True
    pages = list(make_http().iter_link_pages("/linked", params={"per_page": 2}))
    assert len(pages) == 125
    assert sum(len(page) for page in pages) == 250


def test_link_paging_rejects_loops_and_non_lists(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    http = make_http()
    with pytest.raises(ValidationFailed, match="already read"):
        list(http.iter_link_pages("/loop"))
    with pytest.raises(ValidationFailed, match="/object"):
        list(http.iter_link_pages("/object"))


def test_offset_paging_stops_at_total(lms: EchoLMS, make_http: Callable[..., LMSHttp]) -> None:
    pages = list(make_http().iter_offset_pages("/offset", items_key="data", limit=20))
    assert [len(page) for page in pages] == [20, 20, 20, 20, 15]
    assert len(lms.requests_to("/offset")) == 5


def test_offset_paging_without_total_stops_on_short_page(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    lms.with_total = False
    lms.items = [{"id": n} for n in range(40)]
    pages = list(make_http().iter_offset_pages("/offset", items_key="data", limit=20))
    assert [len(page) for page in pages] == [20, 20]
    assert len(lms.requests_to("/offset")) == 3  # the empty third page ends it
    lms.items = []
    assert list(make_http().iter_offset_pages("/offset", items_key="data")) == []


def empty_page_at(offset: int, headers: dict[str, str]) -> Fault:
    """One answer of an empty page at ``offset`` (a provider's hiccup), with ``headers``."""
    return Fault(
        reply=Reply.json({"data": []}, headers=headers),
        match=lambda r: r.path == "/offset" and r.arg("offset") == str(offset),
    )


def test_an_empty_page_below_the_total_fails_the_listing(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    """Taken for the end, it cut the listing short without a word: a sync then marked every
    record after it gone (a class's 2,001 enrollments dropped)."""
    lms.inject(empty_page_at(40, {"X-Total-Count": "95"}))
    pages = make_http().iter_offset_pages("/offset", items_key="data", limit=20)
    read = []
    with pytest.raises(ValidationFailed) as caught:
        read.extend(item["id"] for page in pages for item in page)
    assert read == list(range(40)) and len(lms.requests_to("/offset")) == 3
    assert caught.value.message == (
        f"GET {lms.base_url}/offset?limit=20&offset=40: the page at offset 40 is empty, but"
        " X-Total-Count says 95 records; not taken for the end of the listing"
    )


def test_an_empty_page_without_a_total_is_checked_by_the_total_read_before(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    lms.inject(empty_page_at(20, {}))
    with pytest.raises(ValidationFailed, match="X-Total-Count says 95 records"):
        list(make_http().iter_offset_pages("/offset", items_key="data", limit=20))


def test_an_empty_page_with_a_next_link_fails_the_listing(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    """Without a total, the ``Link`` header says whether more follows: here it does."""
    lms.with_total = False
    lms.inject(empty_page_at(0, {"Link": f'<{lms.base_url}/offset?offset=20>; rel="next"'}))
    with pytest.raises(ValidationFailed) as caught:
        list(make_http().iter_offset_pages("/offset", items_key="data", limit=20))
    assert caught.value.message.endswith(
        ': the page at offset 0 is empty, but its Link header names a next page (rel="next");'
        " not taken for the end of the listing"
    )


@pytest.mark.parametrize(
    "headers",
    [{"X-Total-Count": "0"}, {}, {"Link": '<https://lms.example/offset>; rel="prev"'}],
    ids=["total 0", "no total", "no next"],
)
def test_an_empty_first_page_that_promises_nothing_is_an_empty_listing(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], headers: dict[str, str]
) -> None:
    lms.inject(empty_page_at(0, headers))
    assert list(make_http().iter_offset_pages("/offset", items_key="data", limit=20)) == []


def test_an_empty_page_at_a_total_that_shrank_ends_the_listing(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    """Records deleted meanwhile: the empty page's own total (40, not 95) is reached."""
    lms.inject(empty_page_at(40, {"X-Total-Count": "40"}))
    pages = list(make_http().iter_offset_pages("/offset", items_key="data", limit=20))
    assert [len(page) for page in pages] == [20, 20]


class OffsetBlindLMS(EchoLMS):
    """A server that ignores ``offset`` (every page is the first) and counts 100000."""

    def _offset(self, request: RecordedRequest) -> Reply:
        reply = super()._offset(request.without({"offset"}))
        reply.headers["X-Total-Count"] = "100000"
        return reply


def test_offset_paging_refuses_a_server_that_ignores_offset(sleeps: list[float]) -> None:
    with OffsetBlindLMS(items=95) as blind, LMSHttp(blind.base_url, sleep=sleeps.append) as http:
        pages = http.iter_offset_pages("/offset", items_key="data", limit=20)
        with pytest.raises(ValidationFailed) as caught:
            list(pages)
        assert len(blind.requests_to("/offset")) == 2
        assert caught.value.message == (
            f"GET {blind.base_url}/offset?limit=20&offset=20: paging repeats itself at"
            " offset 20 (every record of the page was read already): the server ignores offset"
        )


def test_offset_paging_reads_a_page_that_repeats_some_records(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    """A record inserted before the offset between two pages shifts one record onto the next
    page: read again (the sync keeps the first copy), not taken for a server that loops."""
    pages = make_http().iter_offset_pages("/offset", items_key="data", limit=20)
    first = next(pages)
    lms.items.insert(0, {"id": -1})
    rest = [item["id"] for page in pages for item in page]
    assert rest[0] == first[-1]["id"] and set(rest[1:]) == set(range(20, 95))


def test_link_paging_refuses_pages_whose_records_were_all_read(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    """Next links that move on (``page=2``, ``page=3``) to a server that ignores ``page``."""
    lms.ignore_page = True
    with pytest.raises(ValidationFailed) as caught:
        list(make_http().iter_link_pages("/linked", params={"per_page": 10}))
    assert len(lms.requests_to("/linked")) == 2
    assert caught.value.message.endswith(
        "(every record of the page was read already): the server ignores the page asked for"
    )


# retries --------------------------------------------------------------------------


def test_429_storm_honours_retry_after_then_succeeds(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    lms.throttle(times=4, retry_after="3")
    assert make_http(backoff_base=0.01).get_json("/ok") == {"ok": True}
    assert len(sleeps) == 4 and all(pause >= 3 for pause in sleeps)
    assert len(lms.requests_to("/ok")) == 5


def test_retry_after_as_http_date(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=5)
    lms.throttle(times=1, retry_after=email.utils.format_datetime(when, usegmt=True))
    make_http(backoff_base=0.01).get_json("/ok")
    assert len(sleeps) == 1 and 3 <= sleeps[0] <= 5


def test_retry_after_beyond_the_cap_is_handed_back(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    lms.throttle(times=1, retry_after="3600")
    with pytest.raises(LMSUnavailable) as caught:
        make_http(backoff_cap=30).get_json("/ok")
    assert caught.value.retry_after == 3600 and sleeps == []


def test_5xx_storm_exhausts_the_budget(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    lms.server_errors(times=50, status=502)
    with pytest.raises(LMSUnavailable, match="after 4 attempt") as caught:
        make_http(max_retries=3, backoff_base=1.0, backoff_cap=2.0).get_json("/ok")
    assert "HTTP 502" in str(caught.value)
    assert caught.value.retry_after is not None
    assert len(lms.requests_to("/ok")) == 4
    assert len(sleeps) == 3 and all(0 <= pause <= 2.0 for pause in sleeps)


def test_backoff_is_jittered_and_capped(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    lms.server_errors(times=8)
    make_http(max_retries=8, backoff_base=1.0, backoff_cap=4.0).get_json("/ok")
    ceilings = [1.0, 2.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0]
    assert all(0 <= pause <= ceiling for pause, ceiling in zip(sleeps, ceilings, strict=True))
    assert len(set(sleeps)) > 1


def test_canvas_403_rate_limit_is_retried_but_plain_403_is_not(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    lms.rate_limit_exceeded(times=2)
    assert make_http().get_json("/ok") == {"ok": True}
    assert len(sleeps) == 2
    lms.error_body = Reply.json({"errors": [{"message": "user not authorized"}]}, 403)
    with pytest.raises(LMSRequestRejected, match="user not authorized") as caught:
        make_http().get_json("/error")
    assert caught.value.status_code == 403
    assert len(lms.requests_to("/error")) == 1


def test_timeouts_are_retried(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    lms.delay_response(1.5, times=1, path="/ok")
    assert make_http(timeout=0.3).get_json("/ok") == {"ok": True}
    assert len(sleeps) == 1


def test_timeouts_exhaust_the_budget(lms: EchoLMS, make_http: Callable[..., LMSHttp]) -> None:
    lms.delay_response(1.5, times=3, path="/ok")
    with pytest.raises(LMSUnavailable, match="ReadTimeout"):
        make_http(timeout=0.2, max_retries=2).get_json("/ok")


def test_connection_refused_is_unavailable(sleeps: list[float]) -> None:
    server = EchoLMS().start()
    url = server.base_url
    server.stop()
    with LMSHttp(url, max_retries=1, sleep=sleeps.append) as http:
        with pytest.raises(LMSUnavailable, match="ConnectError"):
            http.get_json(f"/ok?wstoken={SECRET_WSTOKEN}")


@pytest.mark.parametrize(
    "param", ["key", "oauth_token", "client_assertion", "id_token", "X-Amz-Signature", "verifier"]
)
def test_a_next_page_link_carrying_a_credential_is_masked_in_errors_and_log_lines(
    lms: EchoLMS,
    make_http: Callable[..., LMSHttp],
    caplog: pytest.LogCaptureFixture,
    param: str,
) -> None:
    # An LMS (or the gateway in front of it) may name its next page with a key in the query.
    secret = "AIzaSyNextPageCredential0123456789"
    link = f'</linked?page=2&{param}={secret}>; rel="next"'
    lms.inject(Fault(1, Reply.json([{"id": 1}], headers={"Link": link})))
    lms.server_errors(times=5, path="/linked")
    with caplog.at_level(logging.INFO, logger="httpx"):
        with pytest.raises(LMSUnavailable, match=f"{param}=\\*\\*\\*") as caught:
            list(make_http(max_retries=1).iter_link_pages("/linked"))
    assert_secret_free(caught.value, secret)
    lines = [redact(record.getMessage()) for record in caplog.records]  # as workers.logs does
    assert any(f"{param}=***" in line for line in lines)
    assert not [line for line in lines if secret in line]


def test_a_session_cookie_is_masked_in_the_debug_lines_that_quote_response_headers(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], caplog: pytest.LogCaptureFixture
) -> None:
    # httpcore's DEBUG line quotes every response header; Blackboard answers with its session
    session = "expires:1700000000,id:5E55i0nSecret0123456789,xsrf:0a1b2c3d"
    headers = {"Set-Cookie": f"BbRouter={session}; Path=/; Secure; HttpOnly", "X-Seen": "kept"}
    lms.inject(Fault(1, Reply.json({"ok": True}, headers=headers)))
    with caplog.at_level(logging.DEBUG, logger="httpcore"):
        assert make_http().get_json("/ok") == {"ok": True}
    lines = [redact(record.getMessage()) for record in caplog.records]  # as workers.logs does
    quoted = [line for line in lines if "receive_response_headers.complete" in line]
    assert quoted and "(b'Set-Cookie', b'***')" in quoted[0] and "(b'X-Seen', b'kept')" in quoted[0]
    assert not [line for line in lines if "5E55i0nSecret" in line]


# checked writes ------------------------------------------------------------------------


def write_value(http: LMSHttp, value: int) -> str:
    def check() -> str | None:
        return "already there" if http.get_json("/value")["value"] == value else None

    def write() -> str:
        http.send_json("PUT", "/value", json={"value": value})
        return "written"

    return http.checked_write(check, write)


def test_checked_write_writes_once_and_then_reports_it_done(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    http = make_http()
    assert write_value(http, 7) == "written"
    assert write_value(http, 7) == "already there"
    assert lms.writes == 1


def test_checked_write_rechecks_after_a_lost_answer(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    lms.delay_response(1.5, method="PUT", path="/value")
    assert write_value(make_http(timeout=0.3), 7) == "already there"
    assert lms.writes == 1 and len(lms.requests_to("/value", "PUT")) == 1
    assert len(sleeps) == 1


def test_checked_write_retries_a_refused_attempt_within_budget(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    lms.throttle(times=2, retry_after="2", method="PUT")
    assert write_value(make_http(), 7) == "written"
    assert lms.writes == 1 and [pause >= 2 for pause in sleeps] == [True, True]
    lms.server_errors(times=10, method="PUT")
    with pytest.raises(LMSUnavailable):
        write_value(make_http(max_retries=2), 8)
    assert len(lms.requests_to("/value", "PUT")) == 3 + 3


# throttling ---------------------------------------------------------------------------


def test_low_rate_limit_budget_pauses_before_next_request(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    http = make_http(throttle_threshold=100, backoff_base=0.5)
    http.get_json("/ok")
    http.get_json("/ok")
    assert sleeps == []
    lms.remaining = "20.5"
    http.get_json("/ok")
    assert sleeps == []  # the pause comes before the *next* request
    http.get_json("/ok")
    assert len(sleeps) == 1 and 0.5 <= sleeps[0] <= 1.0


# errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (
            Reply.json({"errors": [{"message": "Invalid access token."}]}, 401),
            "Invalid access token.",
        ),
        (Reply.json({"message": "Course not found"}, 404), "Course not found"),
        (
            Reply.json({"error": "invalid_grant", "error_description": "bad grant"}, 400),
            "invalid_grant: bad grant",
        ),
        (Reply.json({"errors": {"name": [{"message": "too long"}]}}, 422), "too long"),
        (Reply.text("Nope, not allowed", 409), "Nope, not allowed"),
    ],
)
def test_rejections_carry_the_lms_message(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], reply: Reply, expected: str
) -> None:
    lms.error_body = reply
    with pytest.raises(LMSRequestRejected) as caught:
        make_http().get_json("/error")
    assert expected in str(caught.value)
    assert caught.value.status_code == reply.status


def test_malformed_json_names_the_url(lms: EchoLMS, make_http: Callable[..., LMSHttp]) -> None:
    lms.malformed_json(times=1)
    with pytest.raises(ValidationFailed, match=r"GET .*/ok\b.*not JSON"):
        make_http().get_json("/ok")
    with pytest.raises(ValidationFailed, match="/text"):
        make_http().get_json("/text")


def test_401_renews_once_then_retries(lms: EchoLMS, make_http: Callable[..., LMSHttp]) -> None:
    old = lms.issue_token(SECRET_TOKEN)
    auth = SwappableBearer(old)
    renewals: list[str] = []

    def renew() -> None:
        auth.token = lms.issue_token()
        renewals.append(auth.token)

    http = make_http(auth=auth, on_unauthorized=renew)
    assert http.get_json("/secure") == {"ok": True}
    lms.expire_token(old)
    assert http.get_json("/secure") == {"ok": True}
    assert len(renewals) == 1


def test_second_401_is_rejected_without_leaking_the_token(
    lms: EchoLMS, make_http: Callable[..., LMSHttp]
) -> None:
    calls: list[int] = []
    http = make_http(auth=SwappableBearer(SECRET_TOKEN), on_unauthorized=lambda: calls.append(1))
    with pytest.raises(LMSRequestRejected, match="invalid_token") as caught:
        http.get_json("/secure")
    assert calls == [1]
    assert caught.value.status_code == 401
    assert_secret_free(caught.value, SECRET_TOKEN)  # the fake echoes it in its message
    assert "***" in str(caught.value)


def test_secrets_never_reach_messages(
    lms: EchoLMS, make_http: Callable[..., LMSHttp], sleeps: list[float]
) -> None:
    http = make_http(headers={"Authorization": f"Bearer {SECRET_TOKEN}"}, max_retries=1)
    lms.server_errors(times=2, path="/ok")
    with pytest.raises(LMSUnavailable) as unavailable:
        http.get_json(f"/ok?wstoken={SECRET_WSTOKEN}&wsfunction=core_course_get_courses")
    assert "wsfunction=core_course_get_courses" in str(unavailable.value)
    lms.error_body = Reply.text(f"bad token {SECRET_WSTOKEN} / {SECRET_TOKEN}", 400)
    with pytest.raises(LMSRequestRejected) as rejected:
        http.get_json("/error", params={"wstoken": SECRET_WSTOKEN})
    lms.error_body = Reply.json({"message": f"form token {SECRET_WSTOKEN}"}, 403)
    with pytest.raises(LMSRequestRejected) as form_rejected:
        http.send_json("POST", "/error", data={"wstoken": SECRET_WSTOKEN})
    lms.malformed_json(times=1)
    with pytest.raises(ValidationFailed) as malformed:
        http.get_json("/ok", params={"access_token": SECRET_TOKEN})
    for exc in (unavailable.value, rejected.value, form_rejected.value, malformed.value):
        assert_secret_free(exc, SECRET_TOKEN, SECRET_WSTOKEN)
    assert SECRET_TOKEN not in repr(http)
