"""The target side against a real app (aiohttp on a loopback port) and real brokers: a call
whose caller gave up is acknowledged without calling the app, and each backend that can
count a group's members says so (what lets a call to an unknown app fail at once)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tether.brokers import Broker, open_broker
from tether.brokers.base import SubscribeOptions
from tether.cli.run import free_port
from tether.platform.invocation import InvokeReply, InvokeRequest, request_topic
from tether.workers.invocation import InvocationWorker

WAIT = 30.0


@pytest.fixture(params=["memory", "embedded", "redis"])
async def broker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Broker]:
    if request.param == "memory":
        url = "memory://"
    elif request.param == "embedded":
        url = f"embedded://{tmp_path / 'broker.db'}"
    else:
        address = request.getfixturevalue("redis_address")
        url = f"redis://{address}/0?namespace=invoke-{uuid.uuid4().hex[:10]}"
    opened = open_broker(url)
    await opened.connect()
    yield opened
    await opened.close(1.0)


async def test_live_members_counts_the_group(broker: Broker) -> None:
    topic, group = request_topic("cart"), "cart"
    assert await broker.live_members(topic, group) == 0
    member = broker.subscribe(topic, group, SubscribeOptions())
    await member.start()
    try:
        assert await broker.live_members(topic, group) == 1
        assert await broker.live_members(topic, "other") == 0
    finally:
        await member.close(1.0)
    assert await broker.live_members(topic, group) == 0


async def test_a_call_whose_caller_gave_up_is_skipped(broker: Broker) -> None:
    calls: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        calls.append(request.path)
        return web.Response(text="done")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    replies = broker.subscribe("replies", "caller", SubscribeOptions(gate_by_key=False))
    await replies.start()
    worker = InvocationWorker(broker, "cart", port)
    await worker.start()
    try:
        def call(path: str, deadline: float) -> InvokeRequest:
            return InvokeRequest(id=str(uuid.uuid4()), caller="caller", callee="cart",
                                 verb="POST", path=path, headers=[], body=b"x",
                                 deadline=deadline, reply_to="replies")

        late = call("late", time.time() - 1)
        live = call("live", time.time() + WAIT)
        # one key: one partition, handed out in order, so the late call is decided (with no
        # await between taking and skipping it) before the live one is made
        for request in (late, live):
            event = request.to_event()
            event.extensions["partitionkey"] = "k"
            await broker.publish(request_topic("cart"), event)
        async with asyncio.timeout(WAIT):
            delivery = await anext(aiter(replies))
        reply = InvokeReply.from_event(delivery.event)
        assert reply.request_id == live.id and reply.status == 200 and reply.body == b"done"
        assert calls == ["/live"]  # the late one was never made
    finally:
        await worker.stop()
        await replies.close(1.0)
        await runner.cleanup()
