"""lms.deadline: each socket operation of an exchange waits at most the time left to its
deadline, counted on an injected clock over a backend that records what it was given."""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable
from typing import Any

import httpcore
import httpx
import pytest

from lms.auth import ClientSecretGrant, TokenProvider
from lms.deadline import DeadlineBackend, exchange_deadline
from lms.http import LMSHttp


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Recorder(httpcore.NetworkBackend):
    """Records each operation with the timeout it got; ``time_out`` makes reads time out."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, float | None]] = []
        self.time_out = False

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        self.calls.append(("connect", timeout))
        return RecordedStream(self)


class RecordedStream(httpcore.NetworkStream):
    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        self.recorder.calls.append(("read", timeout))
        if self.recorder.time_out:
            raise httpcore.ReadTimeout("timed out")
        return b"x"

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.recorder.calls.append(("write", timeout))

    def close(self) -> None:
        self.recorder.calls.append(("close", None))

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        self.recorder.calls.append(("start_tls", timeout))
        return self


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


def connect(recorder: Recorder, timeout: float | None = 30.0) -> httpcore.NetworkStream:
    return DeadlineBackend(recorder).connect_tcp("lms.example", 443, timeout=timeout)


def test_each_operation_waits_its_own_timeout_or_the_time_left_if_shorter(
    clock: Clock, recorder: Recorder
) -> None:
    with exchange_deadline(10, clock):
        stream = connect(recorder)
        clock.now += 1
        stream = stream.start_tls(ssl.create_default_context(), "lms.example", timeout=30)
        clock.now += 4
        stream.write(b"GET / HTTP/1.1\r\n\r\n", timeout=2)  # its own is shorter
        clock.now += 3
        stream.read(65536, timeout=None)  # none of its own
        stream.close()

    assert recorder.calls == [
        ("connect", 10),
        ("start_tls", 9),
        ("write", 2),
        ("read", 2),
        ("close", None),
    ]


Operation = Callable[[httpcore.NetworkStream], Any]
OPERATIONS: dict[str, tuple[Operation, type[httpcore.TimeoutException]]] = {
    "read": (lambda stream: stream.read(100, timeout=30), httpcore.ReadTimeout),
    "write": (lambda stream: stream.write(b"x", timeout=30), httpcore.WriteTimeout),
    "start_tls": (
        lambda stream: stream.start_tls(ssl.create_default_context(), "lms.example", 30),
        httpcore.ConnectTimeout,
    ),
}


@pytest.mark.parametrize("name", OPERATIONS)
def test_no_operation_starts_once_the_time_is_up(
    clock: Clock, recorder: Recorder, name: str
) -> None:
    """The phase that ran out raises its own timeout: httpx maps each as a socket's."""
    operation, timed_out = OPERATIONS[name]
    with exchange_deadline(10, clock):
        stream = connect(recorder)
        clock.now += 10

        with pytest.raises(timed_out, match=r"^no complete answer within 10 s$"):
            operation(stream)

    assert recorder.calls == [("connect", 10)]


def test_no_connection_starts_once_the_time_is_up(clock: Clock, recorder: Recorder) -> None:
    with exchange_deadline(10, clock):
        connect(recorder).close()
        clock.now += 10.5

        with pytest.raises(httpcore.ConnectTimeout, match="within 10 s"):
            connect(recorder)

    assert recorder.calls == [("connect", 10), ("close", None)]


def test_a_timeout_the_deadline_cut_short_names_the_deadline(
    clock: Clock, recorder: Recorder
) -> None:
    recorder.time_out = True
    with exchange_deadline(10, clock):
        stream = connect(recorder)

        with pytest.raises(httpcore.ReadTimeout, match=r"^no complete answer within 10 s$"):
            stream.read(100, timeout=30)
        with pytest.raises(httpcore.ReadTimeout, match=r"^timed out$"):  # its own ran out
            stream.read(100, timeout=5)


def test_the_clock_starts_at_the_exchanges_first_socket_operation(
    clock: Clock, recorder: Recorder
) -> None:
    """A bearer token fetched on the way (an exchange of its own) does not eat the time of
    the request it is fetched for; once that exchange is over, its own deadline is back."""
    with exchange_deadline(10, clock):
        with exchange_deadline(3, clock):
            connect(recorder)
            clock.now += 50
        stream = connect(recorder)
        clock.now += 4
        stream.read(100, timeout=30)

    assert recorder.calls == [("connect", 3), ("connect", 10), ("read", 6)]


def test_outside_an_exchange_each_operation_keeps_its_own_timeout(
    clock: Clock, recorder: Recorder
) -> None:
    stream = connect(recorder, timeout=None)
    stream.read(100, timeout=30)

    assert recorder.calls == [("connect", None), ("read", 30)]


def test_a_transport_given_to_the_clients_is_used_as_it_is() -> None:
    """Tests hand in their own transports; the deadline's is only the default."""
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/token":
            return httpx.Response(200, json={"access_token": "t0k3n-value"})
        return httpx.Response(200, json=[{"id": 1}])

    transport = httpx.MockTransport(answer)
    tokens = TokenProvider(
        "https://lms.example/token", ClientSecretGrant("tool", "s3cr3t"), transport=transport
    )
    with LMSHttp("https://lms.example", auth=tokens.auth(), transport=transport) as http:
        assert http.get_json("/items") == [{"id": 1}]
    tokens.close()
    assert seen == ["/token", "/items"]
