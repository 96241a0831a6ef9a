"""``configuration.redis`` and its server: connections shared by every subscription, keyspace
notifications turned on by the store itself (or a clear warning when the server refuses), and
Dapr's item shape (no empty ``version`` or ``metadata``)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis

from tests.configuration.conftest import RecordingApp, RedisBackend
from tests.configuration.test_api import client_for, pushes
from tests.servers import free_port, run_redis
from tether.platform.components import Component
from tether.platform.configuration import ConfigurationItem, open_configuration_store
from tether.platform.configuration.service import ConfigurationService

#: more than redis-py's default pool (100 connections) holds
SUBSCRIPTIONS = 200


def key() -> str:
    return f"k-{uuid.uuid4().hex[:10]}"


async def test_many_subscriptions_then_a_get_all_succeed(
    redis_backend: RedisBackend, app_server: RecordingApp
) -> None:
    keys = [key() for _ in range(SUBSCRIPTIONS)]
    async with client_for([redis_backend.component], app_server.port) as client:
        ids = []
        for k in keys:
            resp = await client.get("/v1.0/configuration/config/subscribe", params={"key": k})
            assert resp.status == 200, await resp.text()
            ids.append((await resp.json())["id"])
        await redis_backend.set(keys[0], "first", "1")
        await redis_backend.set(keys[-1], "last", "1")
        resp = await client.get("/v1.0/configuration/config", params=[("key", k) for k in keys])
        assert resp.status == 200, await resp.text()
        assert set(await resp.json()) == {keys[0], keys[-1]}
        # and every subscription still listens: the first and the last are pushed
        await app_server.wait_for(
            lambda got: bool(pushes(got, ids[0])) and bool(pushes(got, ids[-1]))
        )
        # concurrent calls wait for a pooled connection instead of failing
        answers = await asyncio.gather(
            *(client.get("/v1.0/configuration/config", params={"key": k}) for k in keys)
        )
        assert {r.status for r in answers} <= {200, 204}


async def test_items_omit_an_empty_version_and_metadata(
    redis_backend: RedisBackend, app_server: RecordingApp
) -> None:
    plain, versioned = key(), key()
    await redis_backend.client.set(plain, "blue")
    await redis_backend.set(versioned, "42", "7")
    async with client_for([redis_backend.component], app_server.port) as client:
        resp = await client.get(
            "/v1.0/configuration/config", params=[("key", plain), ("key", versioned)]
        )
        assert await resp.json() == {
            plain: {"value": "blue"},
            versioned: {"value": "42", "version": "7"},
        }
    assert ConfigurationItem("v", "", {"a": "b"}).to_json() == {
        "value": "v", "metadata": {"a": "b"}
    }


def component(address: str) -> Component:
    return Component(name="config", type="configuration.redis", metadata={"redisHost": address})


async def test_the_store_turns_keyspace_notifications_on() -> None:
    with run_redis() as address:  # a server as installed: notifications off
        host, port = address.split(":")
        admin = aioredis.Redis(host=host, port=int(port), decode_responses=True)
        await admin.config_set("notify-keyspace-events", "Ex")  # someone else's flags
        store = open_configuration_store(component(address))
        await store.start()
        try:
            flags = (await admin.config_get("notify-keyspace-events"))["notify-keyspace-events"]
            # what the store needs was added, what was there is kept
            assert {"K", "$", "g", "x", "E"} <= set(flags)
            k = key()
            async with await store.watch([k], {}) as watch:
                await admin.set(k, "on||3")
                items = await asyncio.wait_for(anext(aiter(watch)), 30)
            assert items == {k: ConfigurationItem("on", "3")}
        finally:
            await store.close()
            await admin.aclose()


async def test_a_server_that_refuses_config_set_gets_one_clear_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with run_redis("--rename-command", "CONFIG", "") as address:
        store = open_configuration_store(component(address))
        with caplog.at_level(logging.WARNING, logger="tether"):
            await store.start()
        try:
            warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
            assert len(warnings) == 1, [r.getMessage() for r in warnings]
            message = warnings[0].getMessage()
            assert address in message
            assert "notify-keyspace-events" in message and "will not" in message
            # reads still work
            assert await store.get([key()], {}) == {}
        finally:
            await store.close()


async def test_unsubscribing_one_of_two_watches_of_a_key_keeps_the_other(
    redis_backend: RedisBackend,
) -> None:
    store = open_configuration_store(redis_backend.component)
    await store.start()
    k = key()
    try:
        first = await store.watch([k], {})
        second = await store.watch([k], {})
        await first.close()
        await redis_backend.set(k, "still", "2")
        items: dict[str, Any] = await asyncio.wait_for(anext(aiter(second)), 30)
        assert items == {k: ConfigurationItem("still", "2")}
        await second.close()
    finally:
        await store.close()


async def test_a_restarted_server_gets_its_notifications_back_and_changes_still_arrive() -> None:
    """A restart resets notify-keyspace-events to the server's own (off): the store turns
    them on again when its subscriptions reconnect."""
    port = free_port()
    got: list[dict[str, ConfigurationItem]] = []

    async def deliver(sub_id: str, items: dict[str, ConfigurationItem]) -> None:
        got.append(items)

    with run_redis(port=port) as address:
        service = ConfigurationService({"config": open_configuration_store(component(address))})
        await service.start()
    try:
        k = key()
        with run_redis(port=port):  # the same address, a new server: notifications off
            host, _, _ = address.partition(":")
            admin = aioredis.Redis(host=host, port=port, decode_responses=True)
            try:
                await service.subscribe("config", [k], {}, deliver)
                # the first subscription of the new connection ran CONFIG SET again
                flags = (await admin.config_get("notify-keyspace-events"))
                assert "K" in flags["notify-keyspace-events"]
                await admin.set(k, "after||2")
                for _ in range(600):
                    if got:
                        break
                    await asyncio.sleep(0.05)
                assert got == [{k: ConfigurationItem("after", "2")}]
            finally:
                await admin.aclose()
    finally:
        await service.close()
