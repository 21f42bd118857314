"""One deadline for a whole HTTP exchange, held at every socket operation.

httpx's timeout bounds each socket operation alone: connecting, sending the
request and every read of the status line, headers and body each got the
full timeout, so a server that sent its headers one byte every few seconds
was never cut off (only the sync task's time limit stopped it), and one that
was merely slow at each step took about three timeouts.  ``bounded_client``
puts httpx's own connection pools on ``DeadlineBackend``,
whose streams wait at most the time left to the exchange's ``Deadline`` at
each operation: ``min(its own timeout, time left)``, and none at all once the
time is up.  The phase that runs out raises httpcore's timeout for it, which
httpx turns into ``ConnectTimeout``, ``WriteTimeout`` or ``ReadTimeout`` as a
plain socket timeout would be, so callers retry it the same way.

The exchange is ``exchange_deadline``'s block (``lms.wire.send_bounded``);
a context variable, not the connection, carries it, because a kept-alive
connection serves one exchange after another.  Its clock starts at the
exchange's first socket operation, not when the block opens: a bearer token
fetched on the way (``lms.auth``, an exchange of its own, bounded alike) does
not eat the LMS request's time.  Not bounded: the DNS lookup before a connect
(the system resolver's own timeout), each further address of a host whose
first address does not answer (each gets the time left), and a ``write`` that
has to wait more than once for the server to read (requests here are far
below a socket buffer).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from ssl import SSLContext
from typing import Any, TypeVar

import httpcore
import httpx

T = TypeVar("T")


class Deadline:
    """``seconds`` for one exchange, counted from the first time ``left`` is asked."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self._clock = clock
        self._due: float | None = None

    def left(self) -> float:
        """Seconds left (negative once past); the first call starts the clock."""
        if self._due is None:
            self._due = self._clock() + self.seconds
        return self._due - self._clock()

    @property
    def message(self) -> str:
        return f"no complete answer within {self.seconds:g} s"


_current: ContextVar[Deadline | None] = ContextVar("lms_exchange_deadline", default=None)


@contextmanager
def exchange_deadline(
    seconds: float, clock: Callable[[], float] = time.monotonic
) -> Iterator[Deadline]:
    """Bound the socket operations in the block by one ``Deadline`` of ``seconds``."""
    deadline = Deadline(seconds, clock)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        _current.reset(token)


def _within(
    timeout: float | None,
    timed_out: type[httpcore.TimeoutException],
    operation: Callable[[float | None], T],
) -> T:
    """``operation(timeout)``, its timeout cut to the current deadline's time left.

    A timeout the cut caused says so (the deadline's message); one the
    operation's own timeout caused stays httpcore's.
    """
    deadline = _current.get()
    if deadline is None:
        return operation(timeout)
    left = deadline.left()
    if left <= 0:
        raise timed_out(deadline.message)
    if timeout is not None and timeout <= left:
        return operation(timeout)
    try:
        return operation(left)
    except timed_out:
        raise timed_out(deadline.message) from None


class DeadlineStream(httpcore.NetworkStream):
    """A network stream whose every wait ends at the current exchange's deadline."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return _within(timeout, httpcore.ReadTimeout, lambda t: self._stream.read(max_bytes, t))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        _within(timeout, httpcore.WriteTimeout, lambda t: self._stream.write(buffer, t))

    def close(self) -> None:
        self._stream.close()

    def start_tls(
        self,
        ssl_context: SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        """The TLS handshake is part of connecting (httpcore gives it the connect timeout)."""
        return DeadlineStream(
            _within(
                timeout,
                httpcore.ConnectTimeout,
                lambda t: self._stream.start_tls(ssl_context, server_hostname, t),
            )
        )

    def get_extra_info(self, info: str) -> Any:
        return self._stream.get_extra_info(info)


class DeadlineBackend(httpcore.NetworkBackend):
    """Connects through ``backend`` (httpcore's sockets) within the deadline, and hands out
    ``DeadlineStream``s.  No Unix sockets: the LMS clients speak TCP only."""

    def __init__(self, backend: httpcore.NetworkBackend | None = None) -> None:
        self._backend = httpcore.SyncBackend() if backend is None else backend

    def connect_tcp(
        self, host: str, port: int, timeout: float | None = None, *args: Any, **kwargs: Any
    ) -> httpcore.NetworkStream:
        """``args``, ``kwargs``: the local address and socket options, passed on as given."""
        return DeadlineStream(
            _within(
                timeout,
                httpcore.ConnectTimeout,
                lambda t: self._backend.connect_tcp(host, port, t, *args, **kwargs),
            )
        )


def bounded_client(**options: Any) -> httpx.Client:
    """``httpx.Client(**options)`` with each connection pool of httpx's on a ``DeadlineBackend``.

    The client is built as httpx builds it, so the proxies it reads from the
    environment (``HTTPS_PROXY``, ``NO_PROXY``), its TLS settings and its
    pool limits all hold; then each pool of httpx's own transports (the
    direct one and one per proxy) connects through a ``DeadlineBackend``
    wrapped around the backend it had.  A ``transport`` given in ``options``
    (a test's ``MockTransport``) is kept as it is unless it is an
    ``httpx.HTTPTransport``, whose pool is bounded the same way.  httpx (0.28)
    takes no network backend, so this reaches into its transport
    (``HTTPTransport._pool``) and httpcore's pool (``_network_backend``);
    ``tests/lms/test_deadline.py`` fails if either moves.
    """
    client = httpx.Client(**options)
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        if isinstance(transport, httpx.HTTPTransport):
            pool = transport._pool
            if not isinstance(pool._network_backend, DeadlineBackend):
                pool._network_backend = DeadlineBackend(pool._network_backend)
    return client
