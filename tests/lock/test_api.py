"""The lock HTTP API through create_app, on the real Redis and a real SQLite file."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer

from tests.lock.conftest import lock_component
from tests.servers import run_redis
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar import create_app
from tether.sidecar.blocks import BLOCK_FACTORIES
from tether.sidecar.lock import lock_block

LOCK = "/v1.0-alpha1/lock/"
UNLOCK = "/v1.0-alpha1/unlock/"


def client_for(app_id: str, components: Sequence[Component]) -> TestClient[Any, Any]:
    block = lock_block(BlockContext(app_id, components, PubSubRegistry([])))
    assert block is not None
    app = create_app(PubSubRegistry([]), app_id=app_id, components=components, blocks=[block])
    return TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def client(
    store_kind: str, store_address: str
) -> AsyncIterator[TestClient[Any, Any]]:
    redis = store_address if store_kind == "redis" else None
    component = lock_component(store_kind, "mylock", redis, Path(store_address))
    async with client_for("app", [component]) as test_client:
        yield test_client


async def call(client: TestClient[Any, Any], path: str, body: Any) -> tuple[int, Any]:
    resp = await client.post(path, json=body) if not isinstance(body, bytes) else (
        await client.post(path, data=body)
    )
    return resp.status, await resp.json()


def lock_body(resource: str, owner: str, expiry: Any = 30) -> dict[str, Any]:
    return {"resourceId": resource, "lockOwner": owner, "expiryInSeconds": expiry}


async def test_lock_and_unlock_answer_as_dapr(client: TestClient[Any, Any]) -> None:
    res = f"order-{uuid.uuid4()}"
    assert await call(client, LOCK + "mylock", lock_body(res, "alice")) == (200, {"success": True})
    assert await call(client, LOCK + "mylock", lock_body(res, "bob")) == (200, {"success": False})
    unlock = {"resourceId": res, "lockOwner": "bob"}
    assert await call(client, UNLOCK + "mylock", unlock) == (200, {"status": 2})
    unlock["lockOwner"] = "alice"
    assert await call(client, UNLOCK + "mylock", unlock) == (200, {"status": 0})
    assert await call(client, UNLOCK + "mylock", unlock) == (200, {"status": 1})
    assert await call(client, LOCK + "mylock", lock_body(res, "bob")) == (200, {"success": True})


async def test_unknown_fields_are_ignored_and_numbers_may_be_strings(
    client: TestClient[Any, Any],
) -> None:
    body = {**lock_body(f"r-{uuid.uuid4()}", "alice", "15"), "extra": [1]}
    assert await call(client, LOCK + "mylock", body) == (200, {"success": True})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (lock_body("r", "alice", 0), "ExpiryInSeconds is not positive in lock store mylock"),
        (lock_body("r", "alice", -5), "ExpiryInSeconds is not positive in lock store mylock"),
        ({"resourceId": "r", "lockOwner": "alice"}, "ExpiryInSeconds is not positive"),
        ({"lockOwner": "alice", "expiryInSeconds": 5}, "ResourceId is empty in lock store mylock"),
        (lock_body("", "alice"), "ResourceId is empty"),
        ({"resourceId": "r", "expiryInSeconds": 5}, "LockOwner is empty in lock store mylock"),
        (lock_body("r", "alice", 1.5), "expiryInSeconds must be an integer"),
        (lock_body("r", "alice", True), "expiryInSeconds must be an integer"),
        (lock_body("r", "alice", 2**31), "out of the int32 range"),
        # strings a digit test of Unicode's would take, int() would not
        (lock_body("r", "alice", "--5"), "expiryInSeconds must be an integer"),
        (lock_body("r", "alice", "²"), "expiryInSeconds must be an integer"),
        (lock_body("r", "alice", "٣"), "expiryInSeconds must be an integer"),  # Arabic 3
        (b'{"resourceId": "r", "lockOwner": "\\ud800", "expiryInSeconds": 5}',
         "lone surrogate"),
        (b'{"resourceId": "\\udfff", "lockOwner": "alice", "expiryInSeconds": 5}',
         "lone surrogate"),
        (lock_body(7, "alice"), "resourceId must be a string"),  # type: ignore[arg-type]
        ([1, 2], "must be a JSON object"),
        (b"{not json", "failed deserializing HTTP body"),
        (b"", "ExpiryInSeconds is not positive"),  # an empty body is all defaults
    ],
)
async def test_bad_lock_requests_are_400_and_take_nothing(
    client: TestClient[Any, Any], body: Any, message: str
) -> None:
    status, answer = await call(client, LOCK + "mylock", body)
    assert status == 400
    assert answer["errorCode"] == "ERR_MALFORMED_REQUEST"
    assert message in answer["message"]
    # "r" was not taken by the bad request
    assert await call(client, LOCK + "mylock", lock_body("r", "carol", 1)) == (
        200, {"success": True}
    )
    await call(client, UNLOCK + "mylock", {"resourceId": "r", "lockOwner": "carol"})


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"lockOwner": "alice"}, "ResourceId is empty in lock store mylock"),
        ({"resourceId": "r"}, "LockOwner is empty in lock store mylock"),
        (b"[", "failed deserializing HTTP body"),
        (b'{"resourceId": "r", "lockOwner": "\\ud800"}', "lone surrogate"),
    ],
)
async def test_bad_unlock_requests_are_400(
    client: TestClient[Any, Any], body: Any, message: str
) -> None:
    status, answer = await call(client, UNLOCK + "mylock", body)
    assert status == 400
    assert answer["errorCode"] == "ERR_MALFORMED_REQUEST"
    assert message in answer["message"]


async def test_unknown_store(client: TestClient[Any, Any]) -> None:
    unlock = {"resourceId": "r", "lockOwner": "a"}
    for path, body in ((LOCK, lock_body("r", "a")), (UNLOCK, unlock)):
        status, answer = await call(client, path + "nope", body)
        assert status == 400
        assert answer == {
            "errorCode": "ERR_LOCK_STORE_NOT_FOUND", "message": "lock store nope not found"
        }


async def test_a_resource_id_with_the_separator_is_refused_as_dapr_does(
    client: TestClient[Any, Any],
) -> None:
    status, answer = await call(client, LOCK + "mylock", lock_body("a||b", "alice"))
    assert (status, answer["errorCode"]) == (500, "ERR_TRY_LOCK")
    status, answer = await call(client, UNLOCK + "mylock", {"resourceId": "a||b", "lockOwner": "x"})
    assert (status, answer["errorCode"]) == (500, "ERR_UNLOCK")


async def test_no_lock_store_configured() -> None:
    async with client_for("app", []) as test_client:
        status, answer = await call(test_client, LOCK + "any", lock_body("r", "a"))
    assert status == 500
    assert answer == {
        "errorCode": "ERR_LOCK_STORE_NOT_CONFIGURED", "message": "lock store is not configured"
    }


async def test_a_store_failure_is_a_500(tmp_path: Path) -> None:
    with run_redis() as address:
        test_client = client_for("app", [lock_component("redis", "down", address, tmp_path)])
        await test_client.start_server()
    # the server is gone after the sidecar started
    try:
        status, answer = await call(test_client, LOCK + "down", lock_body("r", "a"))
        assert (status, answer["errorCode"]) == (500, "ERR_TRY_LOCK")
        unlock = {"resourceId": "r", "lockOwner": "a"}
        status, answer = await call(test_client, UNLOCK + "down", unlock)
        assert (status, answer["errorCode"]) == (500, "ERR_UNLOCK")
    finally:
        await test_client.close()


async def test_lock_keys_are_scoped_by_app_id_by_default(
    redis_address: str, tmp_path: Path
) -> None:
    """Two apps on one Redis lock the same resource id independently; the key is Dapr's."""
    res = f"res-{uuid.uuid4()}"
    component = lock_component("redis", "shared", redis_address, tmp_path)
    async with client_for("app-a", [component]) as a, client_for("app-b", [component]) as b:
        assert await call(a, LOCK + "shared", lock_body(res, "alice")) == (200, {"success": True})
        assert await call(b, LOCK + "shared", lock_body(res, "bob")) == (200, {"success": True})
    host, port = redis_address.split(":")
    raw = aioredis.Redis(host=host, port=int(port))
    try:
        assert await raw.get(f"lock||app-a||{res}") == b"alice"
        assert await raw.get(f"lock||app-b||{res}") == b"bob"
        assert 0 < await raw.pttl(f"lock||app-a||{res}") <= 30_000
    finally:
        await raw.aclose()


@pytest.mark.parametrize(
    ("prefix", "key"),
    [("none", "lock||{res}"), ("name", "lock||shared||{res}"), ("Team1", "lock||team1||{res}")],
)
async def test_key_prefix_strategies(
    redis_address: str, tmp_path: Path, prefix: str, key: str
) -> None:
    res = f"res-{uuid.uuid4()}"
    component = lock_component("redis", "shared", redis_address, tmp_path, keyPrefix=prefix)
    async with client_for("app-a", [component]) as a, client_for("app-b", [component]) as b:
        assert await call(a, LOCK + "shared", lock_body(res, "alice")) == (200, {"success": True})
        # the apps share the key now: app-b cannot take it
        assert await call(b, LOCK + "shared", lock_body(res, "bob")) == (200, {"success": False})
    host, port = redis_address.split(":")
    raw = aioredis.Redis(host=host, port=int(port))
    try:
        assert await raw.get(key.format(res=res)) == b"alice"
    finally:
        await raw.aclose()


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (Component(name="l", type="lock.redis"), "redisHost is required"),
        (Component(name="l", type="lock.redis", metadata={"redisHost": "nohost"}), "host:port"),
        (Component(name="l", type="lock.sqlite"), "connectionString"),
        (
            Component(name="l", type="lock.sqlite",
                      metadata={"connectionString": "x.db", "tableName": "a;drop"}),
            "tableName",
        ),
        (Component(name="l", type="lock.zookeeper"), "not supported"),
        (
            Component(name="l", type="lock.redis",
                      metadata={"redisHost": "h:1", "keyPrefix": "a||b"}),
            "can't contain",
        ),
    ],
)
def test_bad_components_stop_the_sidecar(component: Component, message: str) -> None:
    with pytest.raises(BlockConfigError, match=message) as caught:
        lock_block(BlockContext("app", [component], PubSubRegistry([])))
    assert "lock store 'l'" in str(caught.value)


def test_the_lock_block_is_registered() -> None:
    context = BlockContext("app", [], PubSubRegistry([]))
    blocks = [factory(context) for factory in BLOCK_FACTORIES]
    assert any(
        any(route.path == LOCK + "{store}" for route in block.routes())  # type: ignore[attr-defined]
        for block in blocks if block is not None
    )
