"""Actor call and async invocation spans of a real sidecar (in process, an embedded broker,
a real aiohttp app hosting an actor type), exported over OTLP/HTTP to the test's receiver."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.serving import serving
from tests.tracing.conftest import Receiver
from tests.tracing.test_sidecar_traces import (
    CALLER_SPAN,
    TRACE_ID,
    TRACEPARENT,
    WAIT,
    otel,
    write_resources,
)
from tether.cli.run import free_port
from tether.sidecar.server import Sidecar

APP_ID = "counters"
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


@dataclass
class ActorApp:
    """The app: hosts actor type Counter; the headers of each call to an actor method and
    to its /later method (async invocation)."""

    port: int
    actor_calls: list[dict[str, str]] = field(default_factory=list)
    later: list[dict[str, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def until_later(self) -> None:
        async with asyncio.timeout(WAIT):
            while not self.later:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def actor_app() -> AsyncIterator[ActorApp]:
    got = ActorApp(free_port())

    async def config(request: web.Request) -> web.Response:
        return web.json_response({"entities": ["Counter"]})

    async def method(request: web.Request) -> web.Response:
        got.actor_calls.append(dict(request.headers))
        return web.json_response({"count": 1})

    async def later(request: web.Request) -> web.Response:
        got.later.append(dict(request.headers))
        got.arrived.set()
        return web.Response(status=200)

    application = web.Application()
    application.router.add_get("/dapr/config", config)
    application.router.add_put("/actors/Counter/{id}/method/{method}", method)
    application.router.add_post("/later", later)
    async with serving(application, got.port):
        yield got


async def test_actor_and_async_calls_chain_caller_to_host_and_the_app(
    tmp_path: Path, actor_app: ActorApp, otlp_receiver: Receiver,
) -> None:
    resources, config = write_resources(tmp_path, otel(otlp_receiver))
    sidecar = Sidecar(APP_ID, free_port(), [resources], config_file=config,
                      app_port=actor_app.port)
    await sidecar.start()
    try:
        await sidecar.start_subscriptions(actor_app.port, drain_timeout=5)
        base = f"http://127.0.0.1:{sidecar.http_port}/v1.0"
        async with aiohttp.ClientSession() as session:
            async with session.put(f"{base}/actors/Counter/c1/method/add", data=b"{}",
                                   headers={"traceparent": TRACEPARENT}) as answer:
                assert answer.status == 200
            async with session.post(f"{base}/invoke/{APP_ID}/method/later", data=b"{}",
                                    headers={"traceparent": TRACEPARENT,
                                             "tether-invoke-async": "true"}) as answer:
                assert answer.status == 202
        await actor_app.until_later()
    finally:
        await sidecar.stop()
    assert {s.trace_id for s in otlp_receiver.spans} == {TRACE_ID}

    # actor: the API call -> the caller's client span -> the host's server span -> the app
    [server] = otlp_receiver.named("PUT /v1.0/actors")
    [client] = otlp_receiver.named("invoke actor Counter/add")
    [host] = otlp_receiver.named("invoked actor Counter/add")
    assert server.parent_id == CALLER_SPAN
    assert (client.kind, client.parent_id) == (CLIENT, server.span_id)
    assert (host.kind, host.parent_id) == (SERVER, client.span_id)
    assert client.attributes["dapr.actor.id"] == host.attributes["dapr.actor.id"] == "c1"
    assert host.attributes["http.response.status_code"] == 200
    [headers] = actor_app.actor_calls
    assert headers["traceparent"] == f"00-{TRACE_ID}-{host.span_id}-01"

    # async: the API call -> the producer span -> its delivery -> the app
    [api] = otlp_receiver.named("POST /v1.0/invoke")
    [producer] = otlp_receiver.named(f"invoke {APP_ID}")
    [delivery] = otlp_receiver.named("process tether.invoke.async.")
    assert (producer.kind, producer.parent_id) == (PRODUCER, api.span_id)
    assert producer.attributes["rpc.method"] == "later"
    assert (delivery.kind, delivery.parent_id) == (CONSUMER, producer.span_id)
    [headers] = actor_app.later
    assert headers["traceparent"] == f"00-{TRACE_ID}-{delivery.span_id}-01"
