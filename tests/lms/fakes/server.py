"""A small real HTTP server that fake LMS platforms build on.

It runs ``ThreadingHTTPServer`` on 127.0.0.1 with an ephemeral port in a
thread, records every request, and injects the faults a real LMS produces
(throttling, 5xx storms, Canvas's 403 throttle, lost responses, malformed
JSON, expired tokens, answers trickled or never sent) so clients are tested
over real sockets.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
import threading
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit


@dataclass(frozen=True)
class RecordedRequest:
    """One request as the server saw it (header names lower-cased)."""

    method: str
    path: str
    query_string: str
    headers: dict[str, str]
    body: bytes
    host: str

    @property
    def url(self) -> str:
        """The absolute URL the client addressed (what OAuth 1.0a signs)."""
        query = f"?{self.query_string}" if self.query_string else ""
        return f"http://{self.host}{self.path}{query}"

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(self.query_string, keep_blank_values=True)

    def without(self, names: Collection[str]) -> RecordedRequest:
        """The request as a server that drops the query parameters ``names`` reads it
        (a paging parameter it ignores: every page is the first)."""
        kept = parse_qsl(self.query_string, keep_blank_values=True)
        query = urlencode([(key, value) for key, value in kept if key not in names])
        return dataclasses.replace(self, query_string=query)

    def arg(self, name: str, default: str | None = None) -> str | None:
        """First value of a query parameter."""
        return self.query.get(name, [default])[0]

    def form(self) -> dict[str, list[str]]:
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            return {}
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def form_pairs(self) -> list[tuple[str, str]]:
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", ""):
            return []
        return parse_qsl(self.body.decode(), keep_blank_values=True)

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Reply:
    """What the fake answers; ``body`` that is not bytes or str is sent as JSON."""

    status: int = 200
    body: Any = b""
    headers: dict[str, str] = field(default_factory=dict)
    trickle: float = 0.0
    """Seconds between the body's bytes, sent one at a time (a server that never times out
    a read, yet never finishes its answer)."""
    chunked: bool = False
    """Sent with ``Transfer-Encoding: chunked`` instead of ``Content-Length``: nothing tells
    the client the size before it reads."""
    trickle_head: float = 0.0
    """Seconds between the bytes of the status line and headers, sent one at a time (a
    server that keeps every read of the client short, yet never gets to its body)."""
    silent: bool = False
    """Read the request, then answer nothing until the server stops (a hung LMS)."""

    @classmethod
    def json(cls, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, payload, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def text(cls, text: str, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, text, {"Content-Type": "text/plain; charset=utf-8", **(headers or {})})

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Fault:
    """Answer the next ``times`` matching requests with ``reply`` instead of the fake.

    With ``delay`` set and no reply, the fake handles the request (writes
    land) and then holds the response for ``delay`` seconds: a lost response.
    With both, ``reply`` comes ``delay`` seconds late: a slow failure.
    """

    times: int = 1
    reply: Reply | None = None
    delay: float = 0.0
    match: Callable[[RecordedRequest], bool] | None = None

    def matches(self, request: RecordedRequest) -> bool:
        return self.times > 0 and (self.match is None or self.match(request))


Route = tuple[str, re.Pattern[str], Callable[..., Reply]]


def path_matcher(
    prefix: str | None, method: str | None
) -> Callable[[RecordedRequest], bool] | None:
    if prefix is None and method is None:
        return None
    return lambda request: (
        (prefix is None or request.path.startswith(prefix))
        and (method is None or request.method == method.upper())
    )


class FakeLMSServer:
    """Base of the fakes: start/stop, request log, faults, tokens and routing.

    Subclasses fill ``routes`` with ``(METHOD, regex, handler)``; handlers get
    the request and the regex groups as keyword arguments and return a Reply.
    """

    name: ClassVar[str] = "fake-lms"

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.faults: list[Fault] = []
        self.tokens: set[str] = set()
        self.handler_errors: list[BaseException] = []
        self.routes: list[Route] = []
        self.lock = threading.RLock()
        self.mount = ""
        """A path prefix the platform sits under (behind a proxy); other paths get 404."""
        self.link_base: str | None = None
        """Where the next-page links point, when not at this server's own base URL: a
        misconfigured proxy or LMS names another host (see ``other_host``)."""
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle ------------------------------------------------------------

    def start(self) -> Self:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.fake = self
        self._server = server
        self._stopping.clear()
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server, self._thread = None, None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{self.name} is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{self.mount}"

    @property
    def link_url(self) -> str:
        """The base of the absolute next-page links the fake writes."""
        return self.base_url if self.link_base is None else self.link_base

    def other_host(self) -> str:
        """This server under another host name (``localhost``): another origin to a client."""
        return self.base_url.replace("://127.0.0.1:", "://localhost:", 1)

    def requests_from_other_host(self) -> list[RecordedRequest]:
        return [r for r in list(self.requests) if not r.host.startswith("127.0.0.1")]

    # tokens ---------------------------------------------------------------

    def issue_token(self, token: str | None = None) -> str:
        token = token or secrets.token_urlsafe(24)
        self.tokens.add(token)
        return token

    def expire_token(self, token: str) -> None:
        """The token stops working, as when it expires or is revoked."""
        self.tokens.discard(token)

    # faults ---------------------------------------------------------------

    def inject(self, fault: Fault) -> Fault:
        with self.lock:
            self.faults.append(fault)
        return fault

    def throttle(
        self,
        times: int = 1,
        *,
        retry_after: str | None = "1",
        path: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """HTTP 429, optionally with ``Retry-After`` (seconds or an HTTP date)."""
        headers = {"Retry-After": retry_after} if retry_after is not None else {}
        reply = Reply.json({"errors": [{"message": "Too Many Requests"}]}, 429, headers)
        return self.inject(Fault(times, reply, match=path_matcher(path, method)))

    def server_errors(
        self,
        times: int = 1,
        *,
        status: int = 503,
        path: str | None = None,
        method: str | None = None,
    ) -> Fault:
        """5xx answered before the fake sees the request (nothing is applied)."""
        reply = Reply.text(f"{status} upstream unavailable", status)
        return self.inject(Fault(times, reply, match=path_matcher(path, method)))

    def rate_limit_exceeded(
        self, times: int = 1, *, path: str | None = None, method: str | None = None
    ) -> Fault:
        """Canvas's throttle: HTTP 403 whose body says ``Rate Limit Exceeded``."""
        reply = Reply.text(
            "403 Forbidden (Rate Limit Exceeded)", 403, {"X-Rate-Limit-Remaining": "0"}
        )
        return self.inject(Fault(times, reply, match=path_matcher(path, method)))

    def malformed_json(
        self, times: int = 1, *, path: str | None = None, method: str | None = None
    ) -> Fault:
        reply = Reply(200, b'{"truncated": [1, 2', {"Content-Type": "application/json"})
        return self.inject(Fault(times, reply, match=path_matcher(path, method)))

    def delay_response(
        self, seconds: float, times: int = 1, *, path: str | None = None, method: str | None = None
    ) -> Fault:
        """Handle the request, then hold the answer longer than the client waits."""
        return self.inject(Fault(times, delay=seconds, match=path_matcher(path, method)))

    # requests -------------------------------------------------------------

    def requests_to(self, path_prefix: str, method: str | None = None) -> list[RecordedRequest]:
        return [
            request
            for request in list(self.requests)
            if request.path.startswith(path_prefix) and (method is None or request.method == method)
        ]

    def handle(self, request: RecordedRequest) -> Reply:
        """Route ``request``; override for platform-wide checks such as auth."""
        for method, pattern, handler in self.routes:
            matched = pattern.fullmatch(request.path)
            if matched and method == request.method:
                return handler(request, **matched.groupdict())
        return self.not_found(request)

    def not_found(self, request: RecordedRequest) -> Reply:
        return Reply.json({"message": f"no route for {request.method} {request.path}"}, 404)

    def add_routes(self, routes: Iterable[tuple[str, str, Callable[..., Reply]]]) -> None:
        self.routes.extend((method, re.compile(path), handler) for method, path, handler in routes)

    # serving --------------------------------------------------------------

    def _take_fault(self, request: RecordedRequest) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(request):
                    fault.times -= 1
                    return fault
        return None

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        parts = urlsplit(handler.path)
        if self.mount and not parts.path.startswith(f"{self.mount}/"):
            _write(
                handler,
                Reply.json({"message": f"{parts.path} is outside {self.mount}"}, 404),
                self._stopping,
            )
            return
        request = RecordedRequest(
            method=handler.command,
            path=parts.path.removeprefix(self.mount),
            query_string=parts.query,
            headers={key.lower(): value for key, value in handler.headers.items()},
            body=body,
            host=handler.headers.get("Host", ""),
        )
        with self.lock:
            self.requests.append(request)
        fault = self._take_fault(request)
        if fault is not None and fault.reply is not None:
            reply = fault.reply
        else:
            reply = self._handle_safely(request)
        if fault is not None and fault.delay:
            self._stopping.wait(fault.delay)
        _write(handler, reply, self._stopping)

    def _handle_safely(self, request: RecordedRequest) -> Reply:
        try:
            with self.lock:
                return self.handle(request)
        except Exception as exc:  # a bug in a fake must show up in the test, not hang it
            self.handler_errors.append(exc)
            return Reply.text(f"fake handler error: {exc!r}", 500)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeLMSServer

    def handle_error(self, request: object, client_address: object) -> None:
        """Clients that hang up mid-response (timeouts) are expected here."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in separate writes
    timeout = 30
    server: _Server

    def _dispatch(self) -> None:
        self.server.fake._serve(self)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    def log_message(self, format: str, *args: Any) -> None:
        """Keep test output clean."""


def _write(handler: BaseHTTPRequestHandler, reply: Reply, stopping: threading.Event) -> None:
    payload = reply.encoded()
    headers = [*reply.headers.items()]
    if reply.chunked:
        headers.append(("Transfer-Encoding", "chunked"))
    else:
        headers.append(("Content-Length", str(len(payload))))
    try:
        if reply.silent:
            stopping.wait()
            handler.close_connection = True
            return
        if reply.trickle_head:
            phrase = handler.responses.get(reply.status, ("",))[0]
            lines = [f"HTTP/1.1 {reply.status} {phrase}", *(f"{k}: {v}" for k, v in headers)]
            head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
            if not _trickle(handler, head, reply.trickle_head, stopping):
                handler.close_connection = True
                return
        else:
            handler.send_response(reply.status)
            for name, value in headers:
                handler.send_header(name, value)
            handler.end_headers()
        if reply.chunked:
            for start in range(0, len(payload), 65536):
                piece = payload[start : start + 65536]
                handler.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            handler.wfile.write(b"0\r\n\r\n")
        elif reply.trickle:
            _trickle(handler, payload, reply.trickle, stopping)
        else:
            handler.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        handler.close_connection = True


def _trickle(
    handler: BaseHTTPRequestHandler, data: bytes, pause: float, stopping: threading.Event
) -> bool:
    """Write ``data`` one byte every ``pause`` seconds; ``False`` if the server stopped first."""
    for start in range(len(data)):
        handler.wfile.write(data[start : start + 1])
        handler.wfile.flush()
        if stopping.wait(pause):
            return False
    return True
