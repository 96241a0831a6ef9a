"""``tether run --app-port P`` without a command: the app runs elsewhere (in a debugger, say)
and the sidecar connects to it once it listens, as daprd does. In process: the supervisor
and a plain aiohttp app in the test's loop."""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tether.cli.run import AppSpec, free_port, run_apps

WAIT = 30.0  # a ceiling for things that should happen, never an assertion about speed


@pytest.fixture(autouse=True)
def _unfreeze() -> Iterator[None]:
    yield
    gc.unfreeze()  # run_apps freezes the heap it started with, as it would in its own process


async def until(what: str, check: Callable[[], Awaitable[Any]]) -> Any:
    deadline = asyncio.get_running_loop().time() + WAIT
    while not (value := await check()):
        assert asyncio.get_running_loop().time() < deadline, f"never happened: {what}"
        await asyncio.sleep(0.05)
    return value


async def serve_app(port: int, received: asyncio.Queue[Any]) -> web.AppRunner:
    """The user's app: subscribes to ``orders`` and takes every event."""
    async def subscribe(request: web.Request) -> web.Response:
        return web.json_response([{"pubsubname": "pubsub", "topic": "orders",
                                   "route": "/orders"}])

    async def deliver(request: web.Request) -> web.Response:
        await received.put((await request.json())["data"])
        return web.json_response({"status": "SUCCESS"})

    app = web.Application()
    app.router.add_get("/dapr/subscribe", subscribe)
    app.router.add_post("/orders", deliver)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def test_the_sidecar_waits_for_an_app_it_did_not_start_then_delivers_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)  # the embedded default broker goes in tmp_path/.tether
    caplog.set_level(logging.INFO, "tether")
    http_port, app_port = free_port(), free_port()
    run = asyncio.create_task(
        run_apps([AppSpec("debugged", app_port=app_port, http_port=http_port)]))
    base = f"http://127.0.0.1:{http_port}/v1.0"
    waiting = f"waiting for app 'debugged' to listen on port {app_port}"
    received: asyncio.Queue[Any] = asyncio.Queue()
    async with aiohttp.ClientSession() as session:

        async def healthy() -> bool:
            try:
                async with session.get(f"{base}/healthz") as response:
                    return response.status == 204
            except aiohttp.ClientError:
                return False

        await until("the sidecar answers", healthy)
        await until("the sidecar says it waits", lambda: asyncio.sleep(0, waiting in caplog.text))
        app = await serve_app(app_port, received)
        try:

            async def subscriptions() -> list[Any]:
                async with session.get(f"{base}/metadata") as response:
                    subs: list[Any] = (await response.json())["subscriptions"]
                    return subs

            (sub,) = await until("the app's subscriptions", subscriptions)
            assert (sub["topic"], sub["type"]) == ("orders", "PROGRAMMATIC")
            async with session.post(f"{base}/publish/pubsub/orders", json={"n": 1}) as response:
                assert response.status == 204
            assert await asyncio.wait_for(received.get(), WAIT) == {"n": 1}
            async with session.post(f"{base}/shutdown") as response:
                assert response.status == 204
            assert await asyncio.wait_for(run, WAIT) == 0
        finally:
            await app.cleanup()
    assert caplog.text.count(waiting) == 1  # said once, not once per attempt
