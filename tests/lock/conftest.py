"""Lock stores on real servers: the session's redis-server and SQLite files in tmp_path."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether.platform.components import Component
from tether.platform.lock.registry import lock_stores
from tether.platform.lock.store import LockStore

STORE_KINDS = ("redis", "sqlite")


def lock_component(
    kind: str, name: str, redis_address: str | None, path: Path, **extra: str
) -> Component:
    if kind == "redis":
        assert redis_address is not None
        metadata = {"redisHost": redis_address, **extra}
        return Component(name=name, type="lock.redis", metadata=metadata)
    metadata = {"connectionString": str(path), **extra}
    return Component(name=name, type="lock.sqlite", metadata=metadata)


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    if kind == "redis":
        request.getfixturevalue("redis_address")
    return kind


@pytest.fixture
def store_address(store_kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The Redis host:port, or the SQLite file path, for the store under test."""
    if store_kind == "redis":
        address: str = request.getfixturevalue("redis_address")
        return address
    return str(tmp_path / "locks.db")


@pytest.fixture
async def store(store_kind: str, store_address: str) -> AsyncIterator[LockStore]:
    redis = store_address if store_kind == "redis" else None
    component = lock_component(store_kind, "locks", redis, Path(store_address))
    opened = lock_stores([component], "app")["locks"].store
    await opened.start()
    try:
        yield opened
    finally:
        await opened.close()
