"""One harness per state store: each test gets its own isolated store on a real server.

``harness.open()`` returns a new handle on the same data (another connection, another
SQLite connection on the same file), so concurrency tests can contend like separate
sidecars would.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tether.platform.components import Component
from tether.platform.state.registry import open_state_store
from tether.platform.state.store import StateStore

STORES = ("memory", "sqlite", "redis", "postgresql")


@dataclass
class StoreHarness:
    name: str
    opener: Callable[[], Awaitable[StateStore]]
    #: the memory store lives in one handle: open() hands back the same one
    shared: StateStore | None = None
    opened: list[StateStore] = field(default_factory=list)

    async def open(self) -> StateStore:
        if self.shared is not None:
            return self.shared
        store = await self.opener()
        self.opened.append(store)
        return store

    async def close(self) -> None:
        for store in [*self.opened, *([self.shared] if self.shared else [])]:
            await store.close()


def _component(type_: str, **metadata: str) -> Component:
    return Component(name="contract", type=type_, metadata=metadata)


@pytest.fixture
def tag() -> str:
    """Unique per test, so tests sharing a server never see each other's keys."""
    return uuid.uuid4().hex[:10]


@pytest.fixture
def pg_table(postgres_dsn: str, tag: str) -> Iterator[str]:
    table = f"state_{tag}"
    yield table
    import psycopg

    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        for name in (table, f"{table}_outbox", f"{table}_meta"):
            conn.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture(params=STORES)
async def harness(
    request: pytest.FixtureRequest, tmp_path: Path, tag: str
) -> AsyncIterator[StoreHarness]:
    name: str = request.param
    h: StoreHarness
    if name == "memory":
        shared = await open_state_store(_component("state.in-memory"))
        h = StoreHarness(name, open_state_store, shared=shared)  # type: ignore[arg-type]
    elif name == "sqlite":
        comp = _component("state.sqlite", connectionString=str(tmp_path / "state.db"))
        h = StoreHarness(name, lambda: open_state_store(comp))
    elif name == "redis":
        address = request.getfixturevalue("redis_address")
        comp = Component(name=f"contract-{tag}", type="state.redis",
                         metadata={"redisHost": address})
        h = StoreHarness(name, lambda: open_state_store(comp))
    else:
        dsn = request.getfixturevalue("postgres_dsn")
        table = request.getfixturevalue("pg_table")
        comp = _component("state.postgresql", connectionString=dsn, tableName=table,
                          metadataTableName=f"{table}_meta")
        h = StoreHarness(name, lambda: open_state_store(comp))
    try:
        yield h
    finally:
        await h.close()


@pytest.fixture
async def store(harness: StoreHarness) -> StateStore:
    return await harness.open()
