"""A lean HTTP/1.1 client for the sidecar's hot calls to one origin (the app's deliveries).

aiohttp's client spends most of a delivery's CPU on what a sidecar talking to its own app
does not need (cookie jars, redirects, proxies, a payload registry, a task-free timeout per
request built from several objects). This pool keeps HTTP/1.1 connections alive to one
``host:port``, writes each request in one ``write`` and parses the answer with
``httptools`` (llhttp, the parser behind uvicorn): Content-Length, chunked and
close-delimited bodies, keep-alive as the server says. One request at a time per connection;
not for HEAD (its answer has a length but no body).

A kept-alive connection the server closed while it was idle fails before any byte of the
answer: such a request is sent once more on a fresh connection (what browsers and aiohttp
do; a delivery is at-least-once anyway). Every other failure is the caller's to handle:
:class:`Http1Error` (an ``OSError``) or ``TimeoutError``.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from dataclasses import dataclass
from typing import cast

import httptools

from tether.platform.errors import TetherError

#: bytes a header name or value must not hold (they would split the request)
_FORBIDDEN = ("\r", "\n", "\0")


class Http1Error(TetherError, ConnectionError):
    """The request got no complete answer (refused, reset, malformed); an OSError, as the
    socket errors it stands for."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    #: (name, value) pairs as sent; ``CIMultiDict(answer.headers)`` looks them up
    headers: list[tuple[str, str]]
    body: bytes


class _Reader:
    """Parses one answer after another off a connection's bytes (httptools callbacks)."""

    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.reset()

    def reset(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.got_bytes = False
        self.headers_done = False
        self.complete = False
        self.keep_alive = False

    def feed(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            raise Http1Error(f"malformed HTTP answer: {exc}") from exc

    def ends_with_close(self) -> bool:
        """Whether the connection's end completes the answer (a body with no
        Content-Length that is not chunked)."""
        if not self.headers_done:
            return False
        names = {name.lower(): value for name, value in self.headers}
        return "content-length" not in names \
            and "chunked" not in names.get("transfer-encoding", "").lower()

    def answer(self) -> Answer:
        return Answer(self.parser.get_status_code(), self.headers, b"".join(self.body))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        self.headers_done = True

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.keep_alive = self.parser.should_keep_alive()
        self.complete = True


class _Connection(asyncio.Protocol):
    """One kept-alive connection; :meth:`exchange` sends a request and waits its answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._reader = _Reader()
        self._answer: asyncio.Future[Answer] | None = None
        self.reusable = False  # set when an answer completed on a keep-alive connection
        self.closed = False
        self._head = False  # the exchange in progress is a HEAD request

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transport is not an asyncio.Transport subclass, yet has its methods
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        reader = self._reader
        try:
            reader.feed(data)
        except Http1Error as exc:
            self._fail(exc)
            self.close()
            return
        if reader.complete:
            self.reusable = reader.keep_alive
            self._complete()
        elif self._head and reader.headers_done:
            # an answer to HEAD has no body whatever its Content-Length says; the parser
            # cannot be told, so the answer ends here and the connection is not reused
            self._complete()
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        answer = self._answer
        if answer is None or answer.done():
            return
        reader = self._reader
        if exc is None and reader.ends_with_close():
            self._complete()
        elif not reader.got_bytes:
            self._fail(_Stale())
        else:
            self._fail(Http1Error(f"the connection closed mid-answer ({exc!r})"))

    def expire(self, timeout: float) -> None:
        """The caller's deadline passed: fail the exchange and drop the connection."""
        self._fail(TimeoutError(f"no answer within {timeout:g} s"))
        self.close()

    # --- exchanges --------------------------------------------------------------------------
    async def exchange(self, request: bytes, head: bool = False) -> Answer:
        assert self._transport is not None
        self._answer = self._loop.create_future()
        self._head = head
        self._reader.reset()
        self.reusable = False
        self._transport.write(request)
        return await self._answer

    def _complete(self) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(self._reader.answer())

    def _fail(self, exc: BaseException) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self._transport is not None:
            self._transport.close()


class _Stale(Http1Error):
    """The connection closed before any byte of the answer."""


def encode_request(
    method: str, target: str, host_header: bytes, body: bytes, headers: dict[str, str] | None
) -> bytes:
    """The request's bytes, to be written at once (one system call, no Nagle wait)."""
    lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), host_header,
             b"Content-Length: %d\r\n" % len(body)]
    for name, value in (headers or {}).items():
        if any(c in name or c in value for c in _FORBIDDEN):
            raise ValueError(f"header {name!r} holds a line break or NUL")
        lines.append(f"{name}: {value}\r\n".encode())
    lines.append(b"\r\n")
    lines.append(body)
    return b"".join(lines)


def host_header(host: str, port: int) -> bytes:
    return f"Host: {host}:{port}\r\n".encode("idna" if not host.isascii() else "ascii")


class Http1Pool:
    """Kept-alive connections to ``host:port``, at most ``limit`` at once (callers beyond
    that wait for a free one)."""

    def __init__(
        self, host: str, port: int, *, limit: int = 100,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._ssl = ssl_context
        self._host_header = host_header(host, port)
        self._limit = limit
        self._idle: collections.deque[_Connection] = collections.deque()
        self._open = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._closed = False

    async def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request (``target`` already percent-encoded, starting with ``/``) and
        return the whole answer; ``timeout`` bounds the whole exchange."""
        request = encode_request(method, target, self._host_header, body, headers)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        for attempt in (1, 2):
            connection, reused = await self._acquire(loop, deadline)
            timer = None
            if deadline is not None:
                timer = loop.call_at(deadline, connection.expire, timeout or 0.0)
            try:
                answer = await connection.exchange(request, method == "HEAD")
            except _Stale:
                self._release(connection)
                if reused and attempt == 1:
                    continue
                raise Http1Error("the server closed the connection without answering") from None
            except BaseException:  # a timeout, a broken answer, the caller's cancel
                connection.close()
                self._release(connection)
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            self._release(connection)
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acquire(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> tuple[_Connection, bool]:
        while True:
            if self._closed:
                raise Http1Error("the pool is closed")
            while self._idle:
                connection = self._idle.pop()
                if not connection.closed:
                    return connection, True
                self._open -= 1
            if self._open < self._limit:
                self._open += 1
                try:
                    connection = await self._connect(loop, deadline)
                except BaseException:
                    self._open -= 1
                    self._wake_one()
                    raise
                return connection, False
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                if deadline is None:
                    await waiter
                else:
                    async with asyncio.timeout_at(deadline):
                        await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    async def _connect(
        self, loop: asyncio.AbstractEventLoop, deadline: float | None
    ) -> _Connection:
        try:
            if deadline is None:
                _, protocol = await loop.create_connection(
                    lambda: _Connection(loop), self.host, self.port, ssl=self._ssl)
            else:
                async with asyncio.timeout_at(deadline):
                    _, protocol = await loop.create_connection(
                        lambda: _Connection(loop), self.host, self.port, ssl=self._ssl)
        except OSError as exc:
            raise Http1Error(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return protocol

    def _release(self, connection: _Connection) -> None:
        if connection.reusable and not connection.closed and not self._closed:
            self._idle.append(connection)
        else:
            connection.close()
            self._open -= 1
        self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @property
    def closed(self) -> bool:
        return self._closed

    async def close(self) -> None:
        """Close every idle connection; those in use close when their exchange ends."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()
            self._open -= 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(Http1Error("the pool is closed"))
        self._waiters.clear()


class BlockingConnection:
    """One kept-alive HTTP/1.1 connection for blocking callers (``tether.Client``): the
    same request bytes and parser as the pool, on a plain socket (or ``ssl_context``'s).
    Not thread-safe: the caller holds a lock."""

    def __init__(
        self, host: str, port: int, *, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self.host = host
        self.port = port
        self._host_header = host_header(host, port)
        self._ssl = ssl_context
        self._sock: socket.socket | None = None
        self._reader = _Reader()

    def request(
        self,
        method: str,
        target: str,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        timeout: float | None = None,
    ) -> Answer:
        """Send one request and read the whole answer; ``timeout`` bounds each wait for
        the socket (as ``http.client`` does). A kept-alive connection the server closed
        while idle is replaced once."""
        request = encode_request(method, target, self._host_header, body, headers)
        for attempt in (1, 2):
            reused = self._sock is not None
            sock = self._sock or self._connect(timeout)
            self._sock = sock
            sock.settimeout(timeout)
            try:
                return self._exchange(sock, request)
            except _Stale:
                self.close()
                if reused and attempt == 1:
                    continue
                raise Http1Error("the server closed the connection without answering") from None
            except BaseException:
                self.close()
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _connect(self, timeout: float | None) -> socket.socket:
        try:
            sock = socket.create_connection((self.host, self.port), timeout=timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._ssl is not None:
                sock = self._ssl.wrap_socket(sock, server_hostname=self.host)
        except TimeoutError:
            raise
        except OSError as exc:
            raise Http1Error(f"cannot connect to {self.host}:{self.port}: {exc}") from exc
        return sock

    def _exchange(self, sock: socket.socket, request: bytes) -> Answer:
        reader = self._reader
        reader.reset()
        try:
            sock.sendall(request)
            while not reader.complete:
                data = sock.recv(65536)
                if not data:
                    if reader.ends_with_close():
                        break
                    raise _Stale() if not reader.got_bytes else Http1Error(
                        "the connection closed mid-answer")
                reader.feed(data)
        except (BrokenPipeError, ConnectionResetError) as exc:
            if not reader.got_bytes:
                raise _Stale() from exc
            raise Http1Error(f"the connection broke mid-answer: {exc}") from exc
        if not (reader.complete and reader.keep_alive):
            self.close()
        return reader.answer()

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
