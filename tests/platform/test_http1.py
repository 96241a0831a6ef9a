"""The lean HTTP/1.1 pool (tether/platform/http1.py) against real sockets: answers framed
every way HTTP/1.1 allows, kept-alive connections, a server that closes an idle one, a
deadline, a pool at its limit, and a header that would split the request."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from tether.platform import aio
from tether.platform.http1 import BlockingConnection, Http1Error, Http1Pool

Reply = Callable[[bytes, asyncio.StreamWriter], Awaitable[bool]]


@contextlib.asynccontextmanager
async def server(reply: Reply) -> AsyncIterator[tuple[int, list[bytes], list[int]]]:
    """A raw HTTP/1.1 server: ``reply`` answers each request (its head and body) and says
    whether to keep the connection. Yields (port, requests seen, connections accepted)."""
    requests: list[bytes] = []
    connections: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                requests.append(head + body)
                if not await reply(head + body, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield port, requests, connections
    finally:
        srv.close()
        await srv.wait_closed()


async def content_length(request: bytes, writer: asyncio.StreamWriter) -> bool:
    body = b"echo:" + request.split(b"\r\n\r\n", 1)[1]
    writer.write(b"HTTP/1.1 201 Created\r\nX-Seen: yes\r\nContent-Length: %d\r\n\r\n%s"
                 % (len(body), body))
    await writer.drain()
    return True


async def test_one_write_per_request_and_answers_on_a_kept_alive_connection() -> None:
    async with server(content_length) as (port, requests, connections):
        pool = Http1Pool("127.0.0.1", port)
        for i in range(3):
            answer = await pool.request("POST", "/orders?x=1", b"n%d" % i,
                                        {"Content-Type": "application/json", "traceparent": "t"})
            assert (answer.status, answer.body) == (201, b"echo:n%d" % i)
            assert ("X-Seen", "yes") in answer.headers
        await pool.close()
    assert len(connections) == 1  # kept alive
    head = requests[0].split(b"\r\n")
    assert head[0] == b"POST /orders?x=1 HTTP/1.1"
    assert f"Host: 127.0.0.1:{port}".encode() in head
    assert b"Content-Length: 2" in head and b"traceparent: t" in head


async def test_chunked_and_close_delimited_answers() -> None:
    async def chunked(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
        return True

    async def until_close(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it")
        await writer.drain()
        return False

    async with server(chunked) as (port, _, _):
        pool = Http1Pool("127.0.0.1", port)
        assert (await pool.request("POST", "/", b"x")).body == b"abcde"
        await pool.close()
    async with server(until_close) as (port, _, connections):
        pool = Http1Pool("127.0.0.1", port)
        assert (await pool.request("POST", "/", b"x")).body == b"all of it"
        assert (await pool.request("POST", "/", b"y")).body == b"all of it"
        await pool.close()
    assert len(connections) == 2  # the server said close: not reused


async def test_an_idle_connection_the_server_closed_is_replaced_once() -> None:
    async def one_per_connection(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await content_length(request, writer)
        return False  # closes after answering, without saying so

    async with server(one_per_connection) as (port, requests, connections):
        pool = Http1Pool("127.0.0.1", port)
        assert (await pool.request("POST", "/", b"a")).body == b"echo:a"
        await asyncio.sleep(0.05)  # the close reaches the pool, or not yet: both must work
        assert (await pool.request("POST", "/", b"b")).body == b"echo:b"
        await pool.close()
    assert len(requests) == 2 and len(connections) == 2


async def test_a_truncated_answer_is_an_error_not_a_short_body() -> None:
    async def truncated(request: bytes, writer: asyncio.StreamWriter) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        await writer.drain()
        return False

    async with server(truncated) as (port, _, _):
        pool = Http1Pool("127.0.0.1", port)
        with pytest.raises(Http1Error):
            await pool.request("POST", "/", b"x")
        await pool.close()


async def test_the_deadline_bounds_the_exchange_and_the_connection_is_dropped() -> None:
    async def silent(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await asyncio.sleep(10)
        return False

    async with server(silent) as (port, _, _):
        pool = Http1Pool("127.0.0.1", port)
        with pytest.raises(TimeoutError):
            await pool.request("POST", "/", b"x", timeout=0.2)
        assert not pool._idle  # a connection that may still get the old answer is not reused
        await pool.close()


async def test_callers_beyond_the_limit_wait_for_a_free_connection() -> None:
    gate = asyncio.Event()

    async def held(request: bytes, writer: asyncio.StreamWriter) -> bool:
        await gate.wait()
        return await content_length(request, writer)

    async with server(held) as (port, _, connections):
        pool = Http1Pool("127.0.0.1", port, limit=2)
        calls = [asyncio.create_task(pool.request("POST", "/", b"%d" % i)) for i in range(5)]
        await asyncio.sleep(0.2)
        assert len(connections) == 2
        gate.set()
        answers = await asyncio.gather(*calls)
        assert sorted(a.body for a in answers) == [b"echo:%d" % i for i in range(5)]
        assert len(connections) == 2
        await pool.close()


async def test_a_refused_connection_and_a_header_with_a_line_break_are_errors() -> None:
    async with server(content_length) as (port, requests, _):
        pool = Http1Pool("127.0.0.1", port)
        with pytest.raises(ValueError, match="line break"):
            await pool.request("POST", "/", b"x", {"traceparent": "a\r\nX-Injected: 1"})
        await pool.close()
        assert requests == []
    closed = Http1Pool("127.0.0.1", port)
    with pytest.raises(Http1Error, match="cannot connect"):
        await closed.request("POST", "/", b"x")


async def test_the_blocking_connection_keeps_alive_replaces_a_stale_one_and_times_out() -> None:
    async def one_per_connection(request: bytes, writer: asyncio.StreamWriter) -> bool:
        if b"slow" in request:
            await asyncio.sleep(10)
        await content_length(request, writer)
        return b"close-after" not in request

    async with server(one_per_connection) as (port, _, connections):
        conn = BlockingConnection("127.0.0.1", port)
        first = await asyncio.to_thread(conn.request, "POST", "/a", b"1", timeout=5)
        second = await asyncio.to_thread(conn.request, "POST", "/a", b"2", timeout=5)
        assert (first.status, first.body, second.body) == (201, b"echo:1", b"echo:2")
        assert len(connections) == 1
        # the server answers, then closes the idle connection without a word
        await asyncio.to_thread(conn.request, "POST", "/a", b"close-after", timeout=5)
        await asyncio.sleep(0.05)
        third = await asyncio.to_thread(conn.request, "POST", "/a", b"3", timeout=5)
        assert third.body == b"echo:3" and len(connections) == 2
        with pytest.raises(TimeoutError):
            await asyncio.to_thread(conn.request, "POST", "/a", b"slow", timeout=0.2)
        conn.close()
    refused = BlockingConnection("127.0.0.1", port)
    with pytest.raises(Http1Error, match="cannot connect"):
        refused.request("GET", "/", timeout=5)


def test_the_pool_works_on_uvloop_as_tether_run_uses_it() -> None:
    """tether run and tether worker run on uvloop, whose transports are not
    asyncio.Transport subclasses: the pool must not care."""

    async def exchange() -> bytes:
        async with server(content_length) as (port, _, _):
            pool = Http1Pool("127.0.0.1", port)
            answer = await pool.request("POST", "/", b"on uvloop")
            await pool.close()
            return answer.body

    assert aio.run(exchange(), uvloop=True) == b"echo:on uvloop"
    # aio.run chose the loop for that run only: the process's policy is still asyncio's
    assert type(asyncio.get_event_loop_policy()).__module__.startswith("asyncio")
