"""bindings.redis on the session's redis-server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from tests.bindings.components.yaml_a import build, output
from tests.servers import free_port
from tether.platform.bindings.binding import (
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    OutputBinding,
)
from tether.platform.bindings.registry import BindingConfigError


@pytest.fixture
async def binding(redis_address: str) -> AsyncIterator[OutputBinding]:
    built = output("bindings.redis", redisHost=redis_address)
    await built.start()
    try:
        yield built
    finally:
        await built.close()


@pytest.fixture
async def raw(redis_address: str) -> AsyncIterator[aioredis.Redis]:
    host, port = redis_address.rsplit(":", 1)
    client = aioredis.Redis(host=host, port=int(port))
    try:
        yield client
    finally:
        await client.aclose()


def fresh() -> str:
    return f"binding-{uuid.uuid4()}"


async def test_create_get_delete(binding: OutputBinding, raw: aioredis.Redis) -> None:
    key = fresh()
    created = await binding.invoke(BindingRequest("create", b'{"n":1}', {"key": key}))
    assert not created.data
    assert await raw.get(key) == b'{"n":1}'
    assert await raw.ttl(key) == -1  # no expiry unless asked
    got = await binding.invoke(BindingRequest("get", metadata={"key": key}))
    assert got.data == b'{"n":1}'
    await binding.invoke(BindingRequest("delete", metadata={"key": key}))
    assert await raw.exists(key) == 0


async def test_get_of_a_missing_key_is_empty_as_in_dapr(binding: OutputBinding) -> None:
    got = await binding.invoke(BindingRequest("get", metadata={"key": fresh()}))
    assert not got.data


async def test_get_with_delete_takes_the_value(binding: OutputBinding,
                                               raw: aioredis.Redis) -> None:
    key = fresh()
    await raw.set(key, b"once")
    got = await binding.invoke(BindingRequest("get", metadata={"key": key, "delete": "true"}))
    assert got.data == b"once"
    assert await raw.exists(key) == 0


async def test_ttl_in_seconds_on_create_and_increment(binding: OutputBinding,
                                                      raw: aioredis.Redis) -> None:
    key = fresh()
    await binding.invoke(BindingRequest("create", b"v", {"key": key, "ttlInSeconds": "100"}))
    assert 0 < await raw.ttl(key) <= 100
    counter = fresh()
    await binding.invoke(BindingRequest("increment", metadata={"key": counter}))
    await binding.invoke(BindingRequest("increment", metadata={"key": counter,
                                                               "ttlInSeconds": "50"}))
    assert await raw.get(counter) == b"2"
    assert 0 < await raw.ttl(counter) <= 50


@pytest.mark.parametrize("ttl", ["0", "-5", "soon", "1.5"])
async def test_bad_ttl_is_refused_and_nothing_written(binding: OutputBinding,
                                                      raw: aioredis.Redis, ttl: str) -> None:
    key = fresh()
    with pytest.raises(BindingRequestError, match="ttlInSeconds"):
        await binding.invoke(BindingRequest("create", b"v", {"key": key, "ttlInSeconds": ttl}))
    assert await raw.exists(key) == 0


async def test_key_is_required(binding: OutputBinding) -> None:
    for operation in ("create", "get", "delete", "increment"):
        with pytest.raises(BindingRequestError, match="metadata key is required"):
            await binding.invoke(BindingRequest(operation, b"v"))


async def test_increment_of_a_non_number_is_the_callers_mistake(
    binding: OutputBinding, raw: aioredis.Redis
) -> None:
    key = fresh()
    await raw.set(key, b"text")
    with pytest.raises(BindingRequestError, match="not an integer"):
        await binding.invoke(BindingRequest("increment", metadata={"key": key}))


async def test_unreachable_server_fails_at_start() -> None:
    built = output("bindings.redis", redisHost=f"127.0.0.1:{free_port()}")
    with pytest.raises(BindingFailedError, match="cannot reach"):
        await built.start()
    await built.close()


def test_metadata_errors_name_the_field() -> None:
    with pytest.raises(BindingConfigError, match="redisHost is required"):
        build("bindings.redis", redisPassword="x")
    with pytest.raises(BindingConfigError, match="redisHost"):
        build("bindings.redis", redisHost="no-port")
    with pytest.raises(BindingConfigError, match="enableTLS"):
        build("bindings.redis", redisHost="h:1", enableTLS="maybe")
