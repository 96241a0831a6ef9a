"""tether.Client and tether.AsyncClient on the secrets, lock and configuration blocks: the
sidecar's real HTTP app with the blocks (build_blocks) served on a loopback port from a
thread of its own, over a secrets file, lock.redis on the session's redis-server,
lock.sqlite, and configuration.redis (keyspace notifications) pushing to a recording app."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import redis
from aiohttp import web

import tether
from tether.cli.run import free_port
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.sdk.client import (
    ConfigurationItem,
    LockLostError,
    LockNotAcquiredError,
    TetherApiError,
    UnlockStatus,
)
from tether.sidecar import create_app
from tether.sidecar.blocks import build_blocks

APP_ID = "blocks-app"
WAIT = 60.0  # a ceiling for things that should happen, never an assertion about speed
T = TypeVar("T")

SECRETS = {"db-pass": "pw", "nested": {"user": "u", "password": "p"}, "hidden": "no"}
SCOPES = {"secrets": {"scopes": [
    {"storeName": "secrets", "defaultAccess": "allow", "deniedSecrets": ["hidden"]},
]}}


class BlockSidecar:
    """The sidecar's HTTP API with its blocks, and an app that records configuration
    pushes, on one event loop in a thread (so the blocking client can call it)."""

    def __init__(self, components: list[Component]) -> None:
        self.components = components
        self.pushed: list[tuple[str, Any]] = []
        self.app_port = free_port()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self.call(self._start())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro: Awaitable[T]) -> T:
        async def run() -> T:
            return await coro
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(WAIT)

    async def _start(self) -> int:
        async def record(request: web.Request) -> web.StreamResponse:
            self.pushed.append((request.path, json.loads(await request.read())))
            return web.Response()

        app = web.Application()
        app.router.add_post("/{tail:.*}", record)
        self.app_runner = web.AppRunner(app, access_log=None)
        await self.app_runner.setup()
        await web.TCPSite(self.app_runner, "127.0.0.1", self.app_port).start()

        registry = PubSubRegistry([])
        context = BlockContext(APP_ID, self.components, registry, app_port=self.app_port,
                               configuration=SCOPES)
        sidecar = create_app(registry, app_id=APP_ID, components=self.components,
                             blocks=build_blocks(context))
        self.runner = web.AppRunner(sidecar, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        bound: int = self.runner.addresses[0][1]
        return bound

    def stop(self) -> None:
        try:
            self.call(self.runner.cleanup())
            self.call(self.app_runner.cleanup())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
            self.loop.close()

    def wait_for_push(self, condition: Callable[[list[tuple[str, Any]]], bool]) -> None:
        deadline = time.monotonic() + WAIT
        while not condition(list(self.pushed)):
            assert time.monotonic() < deadline, f"the app never saw it; got {self.pushed}"
            time.sleep(0.02)


@pytest.fixture
def sidecar(tmp_path: Path, redis_address: str) -> Iterator[BlockSidecar]:
    secrets = tmp_path / "secrets.json"
    secrets.write_text(json.dumps(SECRETS))
    prefix = uuid.uuid4().hex[:8]  # isolates this test's keys on the shared redis-server
    components = [
        Component(name="secrets", type="secretstores.local.file",
                  metadata={"secretsFile": str(secrets), "multiValued": "true"}),
        Component(name="lockredis", type="lock.redis",
                  metadata={"redisHost": redis_address, "keyPrefix": prefix}),
        Component(name="locksqlite", type="lock.sqlite",
                  metadata={"connectionString": str(tmp_path / "lock.db")}),
        Component(name="config", type="configuration.redis",
                  metadata={"redisHost": redis_address}),
    ]
    host, port = redis_address.split(":")
    server = redis.Redis(host=host, port=int(port))
    server.config_set("notify-keyspace-events", "KA")  # the configuration store needs them
    server.close()
    running = BlockSidecar(components)
    yield running
    running.stop()


@pytest.fixture
def client(sidecar: BlockSidecar) -> Iterator[tether.Client]:
    with tether.Client(sidecar.url) as c:
        yield c


@pytest.fixture
def redis_server(redis_address: str) -> Iterator[redis.Redis]:
    host, port = redis_address.split(":")
    server = redis.Redis(host=host, port=int(port), decode_responses=True)
    yield server
    server.close()


def api_error(call: Callable[[], object]) -> TetherApiError:
    with pytest.raises(TetherApiError) as caught:
        call()
    return caught.value


# --- secrets ------------------------------------------------------------------------------------


def test_secrets(client: tether.Client) -> None:
    assert client.get_secret("secrets", "db-pass") == {"db-pass": "pw"}
    assert client.get_secret("secrets", "nested") == {"user": "u", "password": "p"}
    bulk = client.get_bulk_secret("secrets")
    assert bulk == {"db-pass": {"db-pass": "pw"}, "nested": {"user": "u", "password": "p"}}
    denied = api_error(lambda: client.get_secret("secrets", "hidden"))
    assert (denied.status, denied.error_code) == (403, "ERR_PERMISSION_DENIED")
    missing = api_error(lambda: client.get_secret("secrets", "nope"))
    assert (missing.status, missing.error_code) == (404, "ERR_SECRET_GET")
    unknown = api_error(lambda: client.get_secret("other", "db-pass"))
    assert (unknown.status, unknown.error_code) == (401, "ERR_SECRET_STORE_NOT_FOUND")


async def test_secrets_async(sidecar: BlockSidecar) -> None:
    async with tether.AsyncClient(sidecar.url) as client:
        assert await client.get_secret("secrets", "db-pass") == {"db-pass": "pw"}
        assert "hidden" not in await client.get_bulk_secret("secrets")
        with pytest.raises(TetherApiError) as caught:
            await client.get_secret("secrets", "hidden")
        assert caught.value.status == 403


# --- lock ---------------------------------------------------------------------------------------

LOCK_STORES = ("lockredis", "locksqlite")


@pytest.mark.parametrize("store", LOCK_STORES)
def test_try_lock_and_unlock(client: tether.Client, store: str) -> None:
    resource = f"res-{uuid.uuid4().hex[:8]}"
    assert client.try_lock(store, resource, "alice", 60) is True
    assert client.try_lock(store, resource, "bob", 60) is False
    assert client.try_lock(store, resource, "alice", 60) is False  # not reentrant
    assert client.unlock(store, resource, "bob") is UnlockStatus.LOCK_BELONGS_TO_OTHERS
    assert client.unlock(store, resource, "alice") is UnlockStatus.SUCCESS
    assert client.unlock(store, resource, "alice") is UnlockStatus.LOCK_DOES_NOT_EXIST
    assert client.try_lock(store, resource, "bob", 60) is True
    bad = api_error(lambda: client.try_lock(store, resource, "bob", 0))
    assert (bad.status, bad.error_code) == (400, "ERR_MALFORMED_REQUEST")
    unknown = api_error(lambda: client.try_lock("nolock", resource, "bob", 5))
    assert (unknown.status, unknown.error_code) == (400, "ERR_LOCK_STORE_NOT_FOUND")


@pytest.mark.parametrize("store", LOCK_STORES)
def test_lock_context_manager(client: tether.Client, store: str) -> None:
    resource = f"res-{uuid.uuid4().hex[:8]}"
    with client.lock(store, resource, "alice", 60):
        assert client.try_lock(store, resource, "bob", 60) is False
        with pytest.raises(LockNotAcquiredError), client.lock(store, resource, "bob", 60):
            pytest.fail("entered a held lock")
    # released on exit: the next owner gets it at once
    assert client.try_lock(store, resource, "bob", 60) is True
    assert client.unlock(store, resource, "bob") is UnlockStatus.SUCCESS

    # the block's own exception goes through, and the lock is still released
    with pytest.raises(KeyError), client.lock(store, resource, "alice", 60):
        raise KeyError("boom")
    assert client.unlock(store, resource, "alice") is UnlockStatus.LOCK_DOES_NOT_EXIST


@pytest.mark.parametrize("store", LOCK_STORES)
def test_a_block_that_outlives_its_lock_is_told(client: tether.Client, store: str) -> None:
    resource = f"res-{uuid.uuid4().hex[:8]}"
    with pytest.raises(LockLostError) as lost, client.lock(store, resource, "alice", 1):
        # wait (by polling) until the lock has expired and bob took it
        deadline = time.monotonic() + WAIT
        while not client.try_lock(store, resource, "bob", 60):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert lost.value.status is UnlockStatus.LOCK_BELONGS_TO_OTHERS
    # alice's exit did not release bob's lock
    assert client.unlock(store, resource, "bob") is UnlockStatus.SUCCESS


async def test_lock_async(sidecar: BlockSidecar) -> None:
    resource = f"res-{uuid.uuid4().hex[:8]}"
    async with tether.AsyncClient(sidecar.url) as client:
        async with client.lock("lockredis", resource, "alice", 60):
            assert await client.try_lock("lockredis", resource, "bob", 60) is False
            with pytest.raises(LockNotAcquiredError):
                async with client.lock("lockredis", resource, "bob", 60):
                    pytest.fail("entered a held lock")
        assert await client.try_lock("lockredis", resource, "bob", 60) is True
        assert await client.unlock("lockredis", resource, "alice") is \
            UnlockStatus.LOCK_BELONGS_TO_OTHERS
        assert await client.unlock("lockredis", resource, "bob") is UnlockStatus.SUCCESS


# --- configuration ------------------------------------------------------------------------------


def test_get_configuration(client: tether.Client, redis_server: redis.Redis) -> None:
    tag = uuid.uuid4().hex[:8]
    a, b, c = f"{tag}-a", f"{tag}-b", f"{tag} c/d"  # a space and a slash travel quoted
    redis_server.set(a, "1||v1")
    redis_server.set(b, "two")
    redis_server.set(c, "3||v3")
    got = client.get_configuration("config", [a, b, c, f"{tag}-missing"])
    assert got == {a: ConfigurationItem("1", "v1"), b: ConfigurationItem("two", ""),
                   c: ConfigurationItem("3", "v3")}
    assert client.get_configuration("config", a) == {a: ConfigurationItem("1", "v1")}
    assert client.get_configuration("config", [f"{tag}-missing"]) == {}
    unknown = api_error(lambda: client.get_configuration("nope", a))
    assert (unknown.status, unknown.error_code) == (400, "ERR_CONFIGURATION_STORE_NOT_FOUND")


def test_subscribe_and_unsubscribe(
    sidecar: BlockSidecar, client: tether.Client, redis_server: redis.Redis
) -> None:
    key = f"{uuid.uuid4().hex[:8]}-flag"
    sub_id = client.subscribe_configuration("config", [key])
    redis_server.set(key, "on||2")
    sidecar.wait_for_push(lambda got: any(
        body.get("id") == sub_id and body["items"].get(key, {}).get("value") == "on"
        for _, body in got
    ))
    path, body = next(p for p in sidecar.pushed if p[1].get("id") == sub_id)
    assert path == f"/configuration/config/{key}"
    assert body["items"][key]["version"] == "2"
    assert client.unsubscribe_configuration("config", sub_id) is True
    assert client.unsubscribe_configuration("config", sub_id) is False  # no longer known
    unknown = api_error(lambda: client.unsubscribe_configuration("nope", sub_id))
    assert (unknown.status, unknown.error_code) == (400, "ERR_CONFIGURATION_STORE_NOT_FOUND")


async def test_configuration_async(sidecar: BlockSidecar, redis_server: redis.Redis) -> None:
    key = f"{uuid.uuid4().hex[:8]}-async"
    redis_server.set(key, "x||1")
    async with tether.AsyncClient(sidecar.url) as client:
        assert await client.get_configuration("config", [key]) == {
            key: ConfigurationItem("x", "1")
        }
        sub_id = await client.subscribe_configuration("config", key)
        assert await client.unsubscribe_configuration("config", sub_id) is True
        assert await client.unsubscribe_configuration("config", "unknown-id") is False
