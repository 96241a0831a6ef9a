"""The Redis Streams backend under the contract suite: one redis-server per test session,
a fresh key namespace per test, and short group timings so a dead member's partitions move
within a few seconds."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.brokers.harness import Harness
from tether.brokers.redis import RedisBroker


class RedisHarness(Harness):
    name = "redis"

    def __init__(self, address: str) -> None:
        self.address = address
        self.namespace = f"test-{uuid.uuid4().hex[:10]}"

    def url(self) -> str:
        return (
            f"redis://{self.address}/0?namespace={self.namespace}"
            "&session_timeout=3&heartbeat_interval=0.5&block=0.1"
        )

    async def inject_raw(self, topic: str, payload: bytes) -> None:
        """XADD fields that are not a CloudEvent to the topic's last partition stream."""
        broker = RedisBroker(self.url())
        await broker.connect()
        try:
            count = await broker.partition_count(topic)
            stream = broker.keys.stream(topic, count - 1)
            await broker.client.xadd(stream, {"payload": payload})
        finally:
            await broker.close()

    async def client(self) -> aioredis.Redis:
        host, port = self.address.split(":")
        return aioredis.Redis(host=host, port=int(port))


@pytest.fixture
async def redis_harness(redis_address: str) -> AsyncIterator[RedisHarness]:
    harness = RedisHarness(redis_address)
    yield harness
    # drop this test's keys so a long session does not accumulate them
    client = await harness.client()
    try:
        keys = [key async for key in client.scan_iter(match=f"{harness.namespace}:*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()
