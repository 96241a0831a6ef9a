"""What the shared contract can't show: several processes on one SQLite file, Redis's
default TTL, and servers that can't be reached."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers import free_port
from tether.platform.components import Component
from tether.platform.state.registry import open_state_store
from tether.platform.state.store import SetOperation, StateStoreError

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0


async def test_processes_sharing_a_sqlite_file_lose_no_update(tmp_path: Path) -> None:
    path, processes, times = tmp_path / "shared.db", 3, 25
    children = [
        subprocess.Popen([sys.executable, str(ROOT / "tests/state/sqlite_writer.py"), str(path),
                          "counter", str(times)], cwd=ROOT)
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert await asyncio.to_thread(child.wait, 240) == 0
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
    store = await open_state_store(Component(name="s", type="state.sqlite", metadata={
        "connectionString": str(path), "metadataTableName": "state_meta"}))
    item = await store.get("counter")
    await store.close()
    assert item is not None and int(item.value) == processes * times


async def test_a_relative_sqlite_path_is_under_the_base_dir(tmp_path: Path) -> None:
    store = await open_state_store(Component(name="s", type="state.sqlite"), tmp_path)
    await store.set(SetOperation("k", b"v"))
    await store.close()
    assert (tmp_path / ".tether" / "state.db").is_file()


async def test_redis_default_ttl_applies_unless_the_item_says_otherwise(
    redis_address: str,
) -> None:
    store = await open_state_store(Component(
        name=f"ttl-{time.monotonic_ns()}", type="state.redis",
        metadata={"redisHost": redis_address, "ttlInSeconds": "1"}))
    tag = str(time.monotonic_ns())
    try:
        await store.set(SetOperation(f"{tag}-default", b"v"))
        await store.set(SetOperation(f"{tag}-forever", b"v", ttl_seconds=-1))
        item = await store.get(f"{tag}-default")
        assert item is None or "ttlExpireTime" in item.metadata
        deadline = time.monotonic() + WAIT
        while await store.get(f"{tag}-default") is not None:
            assert time.monotonic() < deadline, "the default TTL never expired the item"
            await asyncio.sleep(0.05)
        kept = await store.get(f"{tag}-forever")
        assert kept is not None and "ttlExpireTime" not in kept.metadata
    finally:
        await store.close()


@pytest.mark.parametrize(("type_", "metadata"), [
    ("state.redis", {"redisHost": "127.0.0.1:{port}"}),
    ("state.postgresql", {"connectionString": "host=127.0.0.1 port={port} user=postgres "
                          "connect_timeout=2", "timeout": "2s"}),
])
async def test_an_unreachable_server_is_a_store_error(type_: str, metadata: dict[str, str]
                                                      ) -> None:
    port = free_port()  # nothing listens there
    filled = {k: v.format(port=port) for k, v in metadata.items()}
    with pytest.raises(StateStoreError, match=str(port) if type_ == "state.redis" else None):
        await open_state_store(Component(name="down", type=type_, metadata=filled))


async def test_redis_store_serves_more_concurrent_calls_than_its_pool_has_connections(
    redis_address: str,
) -> None:
    # redis-py's default pool raised "Too many connections" past 100 calls in flight
    from tether.platform.components.metadata import REDIS_MAX_CONNECTIONS as MAX_CONNECTIONS

    store = await open_state_store(Component(
        name=f"pool-{time.monotonic_ns()}", type="state.redis",
        metadata={"redisHost": redis_address}))
    try:
        await store.set(SetOperation(key="k", value=b'"v"'))
        items = await asyncio.gather(*(store.get("k") for _ in range(3 * MAX_CONNECTIONS)))
        assert all(item is not None and item.value == b'"v"' for item in items)
    finally:
        await store.close()
