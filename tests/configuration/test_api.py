"""The configuration HTTP API through create_app, on the real Redis and PostgreSQL:
get, subscribe -> a change in the server -> the app is pushed the change, unsubscribe."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.configuration.conftest import (
    Backend,
    PostgresBackend,
    RecordingApp,
    RedisBackend,
    subscribe_metadata,
)
from tests.servers import free_port, run_redis
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar import create_app
from tether.sidecar.blocks import BLOCK_FACTORIES
from tether.sidecar.configuration import configuration_block


def client_for(
    components: Sequence[Component], app_port: int | None
) -> TestClient[Any, Any]:
    context = BlockContext("app", components, PubSubRegistry([]), app_port=app_port)
    block = configuration_block(context)
    assert block is not None
    app = create_app(PubSubRegistry([]), app_id="app", components=components, blocks=[block])
    return TestClient(TestServer(app, host="127.0.0.1"))


@pytest.fixture
async def client(
    backend: Backend, app_server: RecordingApp
) -> AsyncIterator[TestClient[Any, Any]]:
    async with client_for([backend.component], app_server.port) as test_client:
        yield test_client


def key() -> str:
    return f"k-{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize("version", ["v1.0", "v1.0-alpha1"])
async def test_get_returns_the_items_asked_for(
    client: TestClient[Any, Any], backend: Backend, version: str
) -> None:
    a, b = key(), key()
    await backend.set(a, "blue", "1")
    await backend.set(b, "42", "7")
    resp = await client.get(f"/{version}/configuration/config", params=[("key", a), ("key", b)])
    assert resp.status == 200
    assert await resp.json() == {
        a: {"value": "blue", "version": "1"},
        b: {"value": "42", "version": "7"},
    }
    resp = await client.get(f"/{version}/configuration/config", params={"key": a})
    assert list(await resp.json()) == [a]
    # no key: every item (as Dapr)
    resp = await client.get(f"/{version}/configuration/config")
    everything = await resp.json()
    assert everything[a]["value"] == "blue" and everything[b]["value"] == "42"
    # nothing matched: 204, as Dapr's code answers
    resp = await client.get(f"/{version}/configuration/config", params={"key": key()})
    assert resp.status == 204


async def test_postgresql_item_metadata(
    postgres_backend: PostgresBackend, app_server: RecordingApp
) -> None:
    k = key()
    await postgres_backend.set(k, "on", "3", '{"owner": "ops", "n": 2}')
    async with client_for([postgres_backend.component], app_server.port) as client:
        resp = await client.get("/v1.0/configuration/config", params={"key": k})
        assert await resp.json() == {
            k: {"value": "on", "version": "3", "metadata": {"owner": "ops", "n": "2"}}
        }


def pushes(received: list[tuple[str, Any]], sub_id: str) -> list[tuple[str, Any]]:
    return [(path, body) for path, body in received if body.get("id") == sub_id]


@pytest.mark.parametrize("version", ["v1.0", "v1.0-alpha1"])
async def test_subscribe_pushes_changes_to_the_app_until_unsubscribed(
    client: TestClient[Any, Any], backend: Backend, app_server: RecordingApp, version: str
) -> None:
    watched, other = key(), key()
    await backend.set(watched, "old", "1")
    params = [("key", watched), *subscribe_metadata(backend).items()]
    resp = await client.get(f"/{version}/configuration/config/subscribe", params=params)
    assert resp.status == 200
    sub_id = (await resp.json())["id"]

    await backend.set(other, "ignored", "1")  # not subscribed: never pushed
    await backend.set(watched, "new", "2")
    await app_server.wait_for(lambda got: len(pushes(got, sub_id)) >= 1)
    assert pushes(app_server.received, sub_id)[0] == (
        f"/configuration/config/{watched}",
        {"id": sub_id, "items": {watched: {"value": "new", "version": "2"}}},
    )

    await backend.delete(watched)
    await app_server.wait_for(lambda got: len(pushes(got, sub_id)) >= 2)
    assert pushes(app_server.received, sub_id)[1][1]["items"] == {watched: {"value": ""}}

    # a second subscription stays, as a witness that later changes do flow
    resp = await client.get(f"/{version}/configuration/config/subscribe", params=params)
    witness = (await resp.json())["id"]
    resp = await client.get(f"/{version}/configuration/config/{sub_id}/unsubscribe")
    assert (resp.status, await resp.json()) == (200, {"ok": True})
    before = len(pushes(app_server.received, sub_id))
    await backend.set(watched, "after", "3")
    await app_server.wait_for(lambda got: len(pushes(got, witness)) >= 1)
    assert len(pushes(app_server.received, sub_id)) == before
    assert all(path != f"/configuration/config/{other}" for path, _ in app_server.received)


async def test_subscribe_to_every_key(
    client: TestClient[Any, Any], backend: Backend, app_server: RecordingApp
) -> None:
    resp = await client.get(
        "/v1.0/configuration/config/subscribe", params=subscribe_metadata(backend)
    )
    sub_id = (await resp.json())["id"]
    first, second = key(), key()
    await backend.set(first, "a", "1")
    await backend.set(second, "b", "1")
    await app_server.wait_for(
        lambda got: {f"/configuration/config/{first}", f"/configuration/config/{second}"}
        <= {path for path, _ in pushes(got, sub_id)}
    )


async def test_unsubscribe_of_an_unknown_id(client: TestClient[Any, Any]) -> None:
    resp = await client.get("/v1.0/configuration/config/nope/unsubscribe")
    assert resp.status == 500
    body = await resp.json()
    assert body["ok"] is False and "nope" in body["message"]


async def test_unknown_store(client: TestClient[Any, Any]) -> None:
    for path in ("", "/subscribe", "/x/unsubscribe"):
        resp = await client.get(f"/v1.0/configuration/other{path}")
        assert resp.status == 400
        assert await resp.json() == {
            "errorCode": "ERR_CONFIGURATION_STORE_NOT_FOUND",
            "message": "configuration store other not found",
        }


async def test_no_configuration_store() -> None:
    async with client_for([], None) as client:
        resp = await client.get("/v1.0/configuration/any?key=a")
        assert resp.status == 500
        assert (await resp.json())["errorCode"] == "ERR_CONFIGURATION_STORE_NOT_CONFIGURED"


async def test_subscribe_without_an_app_port(redis_backend: Backend) -> None:
    async with client_for([redis_backend.component], None) as client:
        resp = await client.get("/v1.0/configuration/config/subscribe?key=a")
        assert resp.status == 500
        assert (await resp.json())["errorCode"] == "ERR_APP_CHANNEL_NIL"


async def test_postgresql_subscribe_needs_a_channel(
    postgres_backend: PostgresBackend, app_server: RecordingApp
) -> None:
    async with client_for([postgres_backend.component], app_server.port) as client:
        resp = await client.get("/v1.0/configuration/config/subscribe?key=a")
        assert resp.status == 500
        body = await resp.json()
        assert body["errorCode"] == "ERR_CONFIGURATION_SUBSCRIBE"
        assert "pgNotifyChannel" in body["message"]


async def test_a_store_failure_is_a_500() -> None:
    with run_redis() as address:
        component = Component(
            name="config", type="configuration.redis", metadata={"redisHost": address}
        )
        client = client_for([component], free_port())
        await client.start_server()
    # the server is gone after the sidecar started
    try:
        resp = await client.get("/v1.0/configuration/config?key=a")
        assert resp.status == 500
        assert (await resp.json())["errorCode"] == "ERR_CONFIGURATION_GET"
        resp = await client.get("/v1.0/configuration/config/subscribe?key=a")
        assert resp.status == 500
        assert (await resp.json())["errorCode"] == "ERR_CONFIGURATION_SUBSCRIBE"
    finally:
        await client.close()


@pytest.mark.parametrize(
    ("component", "message"),
    [
        (Component(name="c", type="configuration.redis"), "redisHost is required"),
        (Component(name="c", type="configuration.postgresql",
                   metadata={"table": "t"}), "connectionString is required"),
        (Component(name="c", type="configuration.postgresql",
                   metadata={"connectionString": "host=x"}), "table is required"),
        (Component(name="c", type="configuration.postgresql",
                   metadata={"connectionString": "host=x", "table": "a.b.c"}), "schema.name"),
        (Component(name="c", type="configuration.etcd"), "not supported"),
    ],
)
def test_bad_components_stop_the_sidecar(component: Component, message: str) -> None:
    with pytest.raises(BlockConfigError, match=message) as caught:
        configuration_block(BlockContext("app", [component], PubSubRegistry([])))
    assert "configuration store 'c'" in str(caught.value)


def test_the_configuration_block_is_registered() -> None:
    context = BlockContext("app", [], PubSubRegistry([]))
    paths = {
        route.path  # type: ignore[attr-defined]
        for factory in BLOCK_FACTORIES
        if (block := factory(context)) is not None
        for route in block.routes()
    }
    assert "/v1.0/configuration/{store}/subscribe" in paths


async def drop_watch_connections(backend: Backend) -> None:
    """Cut the store connections of the subscriptions, as a server restart would."""
    if isinstance(backend, PostgresBackend):
        assert backend.conn is not None
        await backend.conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE %s AND pid <> pg_backend_pid()",
            (f'LISTEN "{backend.channel}"%',),
        )
    else:
        assert isinstance(backend, RedisBackend)
        await backend.client.client_kill_filter(_type="pubsub")


async def test_a_subscription_survives_a_lost_store_connection(
    client: TestClient[Any, Any], backend: Backend, app_server: RecordingApp
) -> None:
    k = key()
    params = [("key", k), *subscribe_metadata(backend).items()]
    resp = await client.get("/v1.0/configuration/config/subscribe", params=params)
    sub_id = (await resp.json())["id"]
    await backend.set(k, "before", "1")
    await app_server.wait_for(lambda got: len(pushes(got, sub_id)) >= 1)

    await drop_watch_connections(backend)
    await backend.set(k, "after", "2")
    # pushed by the re-established watch, or as the current value after reconnecting
    await app_server.wait_for(
        lambda got: any(b["items"][k]["value"] == "after" for _, b in pushes(got, sub_id))
    )
