"""Configuration stores on real servers, and a small app that records what it is pushed.

Redis: the session's redis-server with keyspace notifications switched on (the user's
Redis needs the same). PostgreSQL: the machine's server, one table, trigger and channel per
test, created as Dapr's component documents them and dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import psycopg
import pytest
import redis.asyncio as aioredis
from aiohttp import web
from psycopg import sql

from tests.servers import free_port
from tether.platform.components import Component

BACKENDS = ("redis", "postgres")


class Backend:
    """Writes configuration items straight into the server, as an operator would."""

    component: Component

    async def set(self, key: str, value: str, version: str) -> None:
        raise NotImplementedError

    async def delete(self, key: str) -> None:
        raise NotImplementedError


class RedisBackend(Backend):
    def __init__(self, address: str, name: str) -> None:
        host, port = address.split(":")
        self.client = aioredis.Redis(host=host, port=int(port))
        self.component = Component(
            name=name, type="configuration.redis", metadata={"redisHost": address}
        )

    async def set(self, key: str, value: str, version: str) -> None:
        await self.client.set(key, f"{value}||{version}")

    async def delete(self, key: str) -> None:
        await self.client.delete(key)


# the trigger Dapr's configuration.postgresql documents, with the channel as a parameter
TRIGGER_FUNCTION = """
CREATE OR REPLACE FUNCTION {function}() RETURNS TRIGGER AS $$
DECLARE
    data json;
    notification json;
BEGIN
    IF (TG_OP = 'DELETE') THEN
        data = row_to_json(OLD);
    ELSE
        data = row_to_json(NEW);
    END IF;
    notification = json_build_object('table', TG_TABLE_NAME, 'action', TG_OP, 'data', data);
    PERFORM pg_notify({channel}, notification::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;
"""


class PostgresBackend(Backend):
    def __init__(self, dsn: str, name: str) -> None:
        self.dsn = dsn
        suffix = uuid.uuid4().hex[:12]
        self.table = f"cfg_{suffix}"
        self.channel = f"cfgchan_{suffix}"
        self.function = f"cfg_notify_{suffix}"
        self.component = Component(
            name=name, type="configuration.postgresql",
            metadata={"connectionString": dsn, "table": self.table},
        )
        self.conn: psycopg.AsyncConnection[Any] | None = None

    async def create(self) -> None:
        self.conn = await psycopg.AsyncConnection.connect(self.dsn, autocommit=True)
        table = sql.Identifier(self.table)
        await self.conn.execute(
            sql.SQL(
                "CREATE TABLE {} (key VARCHAR NOT NULL, value VARCHAR NOT NULL,"
                " version VARCHAR NOT NULL, metadata JSON)"
            ).format(table)
        )
        await self.conn.execute(
            sql.SQL(TRIGGER_FUNCTION).format(
                function=sql.Identifier(self.function), channel=sql.Literal(self.channel)
            )
        )
        await self.conn.execute(
            sql.SQL(
                "CREATE TRIGGER {} AFTER INSERT OR UPDATE OR DELETE ON {}"
                " FOR EACH ROW EXECUTE PROCEDURE {}()"
            ).format(sql.Identifier(self.function), table, sql.Identifier(self.function))
        )

    async def drop(self) -> None:
        assert self.conn is not None
        await self.conn.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(self.table)))
        await self.conn.execute(sql.SQL("DROP FUNCTION {}").format(sql.Identifier(self.function)))
        await self.conn.close()

    async def set(self, key: str, value: str, version: str, metadata: str | None = None) -> None:
        assert self.conn is not None
        table = sql.Identifier(self.table)
        async with self.conn.transaction():
            cursor = await self.conn.execute(
                sql.SQL("UPDATE {} SET value = %s, version = %s WHERE key = %s").format(table),
                (value, version, key),
            )
            if cursor.rowcount == 0:
                await self.conn.execute(
                    sql.SQL(
                        "INSERT INTO {} (key, value, version, metadata) VALUES (%s, %s, %s, %s)"
                    ).format(table),
                    (key, value, version, metadata),
                )

    async def delete(self, key: str) -> None:
        assert self.conn is not None
        await self.conn.execute(
            sql.SQL("DELETE FROM {} WHERE key = %s").format(sql.Identifier(self.table)), (key,)
        )


@pytest.fixture
async def redis_backend(redis_address: str) -> AsyncIterator[RedisBackend]:
    backend = RedisBackend(redis_address, "config")
    # keyspace notifications are off by default; the store needs them
    await backend.client.config_set("notify-keyspace-events", "KA")
    try:
        yield backend
    finally:
        await backend.client.aclose()


@pytest.fixture
async def postgres_backend(postgres_dsn: str) -> AsyncIterator[PostgresBackend]:
    backend = PostgresBackend(postgres_dsn, "config")
    await backend.create()
    try:
        yield backend
    finally:
        await backend.drop()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> Backend:
    found: Backend = request.getfixturevalue(f"{request.param}_backend")
    return found


def subscribe_metadata(backend: Backend) -> dict[str, str]:
    """What a subscription on ``backend`` needs in its query (the channel for PostgreSQL)."""
    if isinstance(backend, PostgresBackend):
        return {"metadata.pgNotifyChannel": backend.channel}
    return {}


@dataclass
class RecordingApp:
    """An aiohttp app on a free port that records every POST it receives."""

    port: int
    received: list[tuple[str, Any]] = field(default_factory=list)

    async def wait_for(
        self, condition: Callable[[list[tuple[str, Any]]], bool], timeout: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout
        while not condition(self.received):
            assert time.monotonic() < deadline, f"app never saw it; got {self.received}"
            await asyncio.sleep(0.02)


@pytest.fixture
async def app_server() -> AsyncIterator[RecordingApp]:
    recorder = RecordingApp(free_port())

    async def record(request: web.Request) -> web.StreamResponse:
        recorder.received.append((request.path, json.loads(await request.read())))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/{tail:.*}", record)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", recorder.port).start()
    try:
        yield recorder
    finally:
        await runner.cleanup()


