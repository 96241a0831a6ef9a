"""A real sidecar (aiohttp test server on a loopback port) with the state block, for the
state API tests; and the state components of each store on its real server."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer

from tests.brokers.helpers import take
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.events import CloudEvent
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar import create_app
from tether.sidecar.state import StateApi, state_block

#: every state store, each on its real server
STORES = ("memory", "sqlite", "redis", "postgresql")


def store_component(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path, name: str = "statestore",
    **metadata: str,
) -> Component:
    """A state component of ``kind`` on its real server, isolated for this test."""
    tag = uuid.uuid4().hex[:10]
    meta: dict[str, str] = {}
    if kind == "memory":
        type_ = "state.in-memory"
    elif kind == "sqlite":
        type_ = "state.sqlite"
        meta["connectionString"] = str(tmp_path / "state.db")
    elif kind == "redis":
        type_ = "state.redis"
        meta["redisHost"] = request.getfixturevalue("redis_address")
    else:
        type_ = "state.postgresql"
        dsn = request.getfixturevalue("postgres_dsn")
        table = f"api_{tag}"
        meta.update(connectionString=dsn, tableName=table, metadataTableName=f"{table}_meta")
        request.addfinalizer(lambda: _drop_tables(dsn, table))
    meta.update(metadata)
    return Component(name=name, type=type_, metadata=meta)


def _drop_tables(dsn: str, table: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        for name in (table, f"{table}_outbox", f"{table}_meta"):
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def memory_pubsub(name: str = "pubsub") -> Component:
    # the memory broker is shared by name in the process: a unique name isolates the test
    return Component(name=name, type="pubsub.in-memory")


@dataclass
class Sidecar:
    server: TestServer
    session: ClientSession
    registry: PubSubRegistry
    block: StateApi

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any
                   ) -> ClientResponse:
        if body is not None and not isinstance(body, (bytes, str)):
            kwargs["json"] = body
        elif body is not None:
            kwargs["data"] = body
        response = await self.session.request(method, self.url(path), **kwargs)
        await response.read()
        return response

    async def save(self, store: str, items: list[dict[str, Any]], query: str = ""
                   ) -> ClientResponse:
        return await self.call("POST", f"/v1.0/state/{store}{query}", items)

    async def get(self, store: str, key: str) -> ClientResponse:
        return await self.call("GET", f"/v1.0/state/{store}/{key}")

    async def events(self, pubsub: str, topic: str, count: int) -> list[CloudEvent]:
        """The first ``count`` events of the topic (a new group reads from the start)."""
        broker = await self.registry.broker(pubsub)
        async with broker.subscribe(topic, f"check-{uuid.uuid4().hex}") as subscription:
            return [d.event for d in await take(subscription, count)]


@asynccontextmanager
async def running(
    components: Sequence[Component], app_id: str = "app1"
) -> AsyncIterator[Sidecar]:
    registry = PubSubRegistry(components)
    block = state_block(BlockContext(app_id, components, registry))
    app = create_app(registry, app_id=app_id, components=components, blocks=[block])
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = ClientSession()
    try:
        yield Sidecar(server, session, registry, block)
    finally:
        await session.close()
        await server.close()


async def error_of(response: ClientResponse) -> tuple[int, str]:
    body = await response.json()
    return response.status, body["errorCode"]
