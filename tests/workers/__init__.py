"""Tests of the workers; :class:`AppServer` is the app they deliver to (a real aiohttp server
on a free port, run in the test's event loop so handlers can share state with the test)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

from tether.platform.events import CloudEvent
from tether.platform.events.json_format import from_json

#: ceiling for waits on something that should happen (never a timing assertion)
WAIT = 20.0

Reply = Callable[["Call"], Awaitable[web.StreamResponse]]


@dataclass(slots=True)
class Call:
    path: str
    headers: dict[str, str]
    body: bytes
    event: CloudEvent | None = None


@dataclass
class AppServer:
    """Records every POST; ``reply`` decides the answer (default: 200 with no body)."""

    reply: Reply | None = None
    calls: list[Call] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{path:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        call = Call(request.match_info["path"], dict(request.headers), body)
        if request.content_type == "application/cloudevents+json":
            call.event = from_json(body)
        self.calls.append(call)
        async with self._arrived:
            self._arrived.notify_all()
        if self.reply is None:
            return web.Response(status=200)
        return await self.reply(call)

    async def wait_calls(self, count: int, wait: float = WAIT) -> list[Call]:
        """The first ``count`` calls, once they have arrived (fails after ``wait`` s)."""

        async def arrived() -> None:
            async with self._arrived:
                await self._arrived.wait_for(lambda: len(self.calls) >= count)

        await asyncio.wait_for(arrived(), wait)
        return self.calls[:count]


def status(word: str, code: int = 200) -> web.Response:
    return web.Response(status=code, body=json.dumps({"status": word}).encode(),
                        content_type="application/json")


async def until(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Wait until ``condition()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)
