"""Load generation shared by the benchmarks: pacing, saturation, a cheap HTTP/1.1 client and
the CPU a server process (tree) has used, read from /proc.

- :func:`paced` is the open loop (each request starts at its scheduled time whether or not
  the earlier ones have answered); :func:`saturate` the closed loop (N workers, each sending
  its next request when the last one answered).
- :class:`RawPool` keeps keep-alive HTTP/1.1 connections that send one pre-encoded request
  and parse only the status line and Content-Length of the answer: on this 2-core machine a
  load generator built on aiohttp's client costs about as much CPU per request as the server
  it measures, so it cannot saturate a fast one (bench/http_floor.py --client compares them).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import cast

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


# --- CPU of a process from /proc -------------------------------------------------------------
def _stat(pid: int) -> list[str]:
    # the command name (field 2) may hold spaces: split after its closing parenthesis
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system, all threads) the process has used so far: a cost per
    request that a busy shared machine blurs much less than wall-clock figures."""
    fields = _stat(pid)
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def thread_cpu(pid: int) -> dict[int, float]:
    """CPU seconds per thread of the process, by thread id (the main thread's is ``pid``)."""
    times = {}
    for entry in os.scandir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):  # a thread gone meanwhile
            fields = Path(f"/proc/{pid}/task/{entry.name}/stat").read_text()
            fields_after = fields.rsplit(")", 1)[1].split()
            times[int(entry.name)] = (int(fields_after[11]) + int(fields_after[12])) / CLOCK_TICKS
    return times


def tree_cpu(pid: int) -> float:
    """:func:`process_cpu` summed over ``pid`` and its live descendants (granian's workers,
    ``tether run``'s children)."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                parent = int(_stat(int(entry.name))[1])
            except (OSError, IndexError):  # gone meanwhile
                continue
            children.setdefault(parent, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        try:
            total += process_cpu(current)
        except OSError:
            continue
        todo.extend(children.get(current, ()))
    return total


# --- open and closed loop ----------------------------------------------------------------------
async def paced(count: int, rate: float, send: Callable[[int], Awaitable[object]]
                ) -> tuple[list[float], list[float], float]:
    """Open loop: request i starts at start + i/rate, never waiting for earlier answers.
    Returns the latencies (s), how late each request started, and the elapsed time."""
    loop = asyncio.get_running_loop()
    latencies = [0.0] * count
    lags = [0.0] * count
    pending: set[asyncio.Task[None]] = set()
    start = loop.time() + 0.05

    async def one(i: int, due: float) -> None:
        began = time.perf_counter()
        lags[i] = max(0.0, loop.time() - due)
        await send(i)
        latencies[i] = time.perf_counter() - began

    for i in range(count):
        due = start + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(i, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
    await asyncio.gather(*pending)
    return latencies, lags, loop.time() - start


async def saturate(seconds: float, workers: int, send: Callable[[], Awaitable[object]]
                   ) -> tuple[int, float]:
    """Closed loop for ``seconds``: ``workers`` senders, each sending its next request when
    its last one answered. Returns the requests answered and the elapsed time."""
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await send()
            done += 1

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(workers)))
    return done, time.perf_counter() - started


# --- a cheap HTTP/1.1 client -------------------------------------------------------------------
class _Connection(asyncio.Protocol):
    """One keep-alive connection with at most one request in flight (no pipelining)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future[int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, only alike
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        head = bytes(self.buffer[:end]).lower()
        length = 0
        at = head.find(b"\r\ncontent-length:")
        if at >= 0:
            stop = head.find(b"\r\n", at + 2)
            length = int(head[at + 17 : stop if stop >= 0 else len(head)])
        elif b"\r\ntransfer-encoding:" in head:
            self._fail(ValueError("chunked answers are not supported by this client"))
            return
        if len(self.buffer) < end + 4 + length:
            return
        del self.buffer[: end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(int(head[9:12]))

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionError("the server closed the connection"))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    async def send(self, request: bytes) -> int:
        assert self.transport is not None
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter


class RawPool:
    """Keep-alive connections to one server, all sending the same pre-encoded request; a
    request takes an idle connection or opens one, so the open loop never waits for one."""

    def __init__(self, host: str, port: int, request: bytes) -> None:
        self.host, self.port, self.request = host, port, request
        self.idle: list[_Connection] = []
        self.opened: list[_Connection] = []

    async def send(self, request: bytes | None = None) -> int:
        """Send the pool's request (or ``request``, encoded with :func:`http_request`)."""
        connection = self.idle.pop() if self.idle else await self._open()
        status = await connection.send(request or self.request)
        self.idle.append(connection)
        return status

    async def _open(self) -> _Connection:
        loop = asyncio.get_running_loop()
        _, connection = await loop.create_connection(_Connection, self.host, self.port)
        self.opened.append(connection)
        return connection

    def close(self) -> None:
        for connection in self.opened:
            if connection.transport is not None:
                connection.transport.close()


def http_request(method: str, path: str, host: str, body: bytes = b"",
                 content_type: str = "application/json") -> bytes:
    """One HTTP/1.1 keep-alive request, encoded once."""
    head = (f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body
