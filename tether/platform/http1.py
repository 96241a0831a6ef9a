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
from dataclasses import dataclass

import httptools

#: bytes a header name or value must not hold (they would split the request)
_FORBIDDEN = ("\r", "\n", "\0")


class Http1Error(ConnectionError):
    """The request got no complete answer (refused, reset, malformed)."""


@dataclass(frozen=True, slots=True)
class Answer:
    status: int
    #: header names lower-cased, values as sent
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One kept-alive connection; :meth:`exchange` sends a request and waits its answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._answer: asyncio.Future[Answer] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._got_bytes = False
        self._headers_done = False
        self.reusable = False  # set when an answer completed on a keep-alive connection
        self.closed = False

    # --- asyncio.Protocol -------------------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(Http1Error(f"malformed HTTP answer: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._headers_done and exc is None and self._close_delimited():
            # a body with no Content-Length and not chunked ends with the connection
            self._complete()
            return
        self._fail(_Stale() if not self._got_bytes else Http1Error(
            f"the connection closed mid-answer: {exc!r}" if exc else
            "the connection closed mid-answer"))

    def _close_delimited(self) -> bool:
        return "content-length" not in self._headers \
            and "chunked" not in self._headers.get("transfer-encoding", "").lower()

    def expire(self, timeout: float) -> None:
        """The caller's deadline passed: fail the exchange and drop the connection."""
        self._fail(TimeoutError(f"no answer within {timeout:g} s"))
        self.close()

    # --- httptools callbacks ----------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._headers_done = True

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        self.reusable = self._parser.should_keep_alive()
        self._complete()

    # --- exchanges --------------------------------------------------------------------------
    async def exchange(self, request: bytes) -> Answer:
        assert self._transport is not None
        self._answer = self._loop.create_future()
        self._headers, self._body = {}, []
        self._got_bytes = self._headers_done = False
        self.reusable = False
        self._transport.write(request)
        return await self._answer

    def _complete(self) -> None:
        answer = self._answer
        if answer is not None and not answer.done():
            answer.set_result(Answer(self._parser.get_status_code(), self._headers,
                                     b"".join(self._body)))

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


class Http1Pool:
    """Kept-alive connections to ``host:port``, at most ``limit`` at once (callers beyond
    that wait for a free one)."""

    def __init__(self, host: str, port: int, *, limit: int = 100) -> None:
        self.host = host
        self.port = port
        self._host_header = f"Host: {host}:{port}\r\n".encode()
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
        request = self._encode(method, target, body, headers)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        for attempt in (1, 2):
            connection, reused = await self._acquire(loop, deadline)
            timer = None
            if deadline is not None:
                timer = loop.call_at(deadline, connection.expire, timeout or 0.0)
            try:
                answer = await connection.exchange(request)
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

    def _encode(
        self, method: str, target: str, body: bytes, headers: dict[str, str] | None
    ) -> bytes:
        lines = [f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), self._host_header,
                 b"Content-Length: %d\r\n" % len(body)]
        for name, value in (headers or {}).items():
            if any(c in name or c in value for c in _FORBIDDEN):
                raise ValueError(f"header {name!r} holds a line break or NUL")
            lines.append(f"{name}: {value}\r\n".encode())
        lines.append(b"\r\n")
        lines.append(body)
        return b"".join(lines)

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
                    lambda: _Connection(loop), self.host, self.port)
            else:
                async with asyncio.timeout_at(deadline):
                    _, protocol = await loop.create_connection(
                        lambda: _Connection(loop), self.host, self.port)
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
