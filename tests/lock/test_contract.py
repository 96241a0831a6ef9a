"""The contract every lock store passes, on the real Redis and a real SQLite file."""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

import pytest

from tests.lock.conftest import lock_component
from tests.servers import free_port
from tether.platform.lock.redis_store import RedisLockStore
from tether.platform.lock.registry import lock_stores
from tether.platform.lock.store import LockStore, LockStoreError, UnlockStatus


def fresh_key() -> str:
    return f"lock||app||{uuid.uuid4()}"


async def wait_until_taken(store: LockStore, key: str, owner: str, timeout: float = 60) -> None:
    """Poll until ``owner`` gets ``key`` (an expiry passed); fails after a generous timeout."""
    deadline = time.monotonic() + timeout
    while not await store.try_lock(key, owner, 30):
        assert time.monotonic() < deadline, f"{owner} never got {key}"
        await asyncio.sleep(0.05)


async def test_one_owner_at_a_time_and_not_reentrant(store: LockStore) -> None:
    key = fresh_key()
    assert await store.try_lock(key, "alice", 30)
    assert not await store.try_lock(key, "bob", 30)
    assert not await store.try_lock(key, "alice", 30)  # not reentrant, as in Dapr


async def test_unlock_by_owner_frees_the_lock(store: LockStore) -> None:
    key = fresh_key()
    assert await store.try_lock(key, "alice", 30)
    assert await store.unlock(key, "alice") is UnlockStatus.SUCCESS
    assert await store.try_lock(key, "bob", 30)


async def test_unlock_of_a_missing_lock(store: LockStore) -> None:
    assert await store.unlock(fresh_key(), "alice") is UnlockStatus.LOCK_DOES_NOT_EXIST


async def test_unlock_by_another_owner_leaves_the_lock_held(store: LockStore) -> None:
    key = fresh_key()
    assert await store.try_lock(key, "alice", 30)
    assert await store.unlock(key, "bob") is UnlockStatus.LOCK_BELONGS_TO_OTHERS
    assert not await store.try_lock(key, "bob", 30)
    assert await store.unlock(key, "alice") is UnlockStatus.SUCCESS


async def test_keys_are_independent(store: LockStore) -> None:
    first, second = fresh_key(), fresh_key()
    assert await store.try_lock(first, "alice", 30)
    assert await store.try_lock(second, "bob", 30)
    assert await store.unlock(second, "bob") is UnlockStatus.SUCCESS
    assert await store.unlock(first, "bob") is UnlockStatus.LOCK_BELONGS_TO_OTHERS


async def test_an_expired_lock_can_be_taken_and_is_gone_for_its_owner(store: LockStore) -> None:
    key = fresh_key()
    assert await store.try_lock(key, "alice", 1)
    await wait_until_taken(store, key, "bob")
    # alice's lock expired and bob holds the key now: alice cannot release bob's lock
    assert await store.unlock(key, "alice") is UnlockStatus.LOCK_BELONGS_TO_OTHERS
    assert await store.unlock(key, "bob") is UnlockStatus.SUCCESS


async def test_unlock_after_expiry_reports_no_lock(store: LockStore) -> None:
    key = fresh_key()
    assert await store.try_lock(key, "alice", 1)
    deadline = time.monotonic() + 60
    while (status := await store.unlock(key, "alice")) is UnlockStatus.SUCCESS:
        # still held: released by alice herself; take it again and let it expire this time
        assert time.monotonic() < deadline
        assert await store.try_lock(key, "alice", 1)
        await asyncio.sleep(1.5)
    assert status is UnlockStatus.LOCK_DOES_NOT_EXIST


async def test_more_concurrent_calls_than_connections_all_succeed(store: LockStore) -> None:
    # redis-py's default pool fails past 100 calls in flight ("Too many connections");
    # the store's pool makes them wait for a connection instead
    keys = [fresh_key() for _ in range(250)]
    assert all(await asyncio.gather(*(store.try_lock(k, "alice", 30) for k in keys)))
    statuses = await asyncio.gather(*(store.unlock(k, "alice") for k in keys))
    assert set(statuses) == {UnlockStatus.SUCCESS}


async def test_a_store_that_cannot_be_reached_raises() -> None:
    component = lock_component("redis", "down", f"127.0.0.1:{free_port()}", Path("-"))
    store = lock_stores([component], "app")["down"].store
    assert isinstance(store, RedisLockStore)
    try:
        with pytest.raises(LockStoreError, match="cannot reach Redis"):
            await store.start()  # at start, so the sidecar stops with the reason
        with pytest.raises(LockStoreError):
            await store.try_lock(fresh_key(), "alice", 5)
        with pytest.raises(LockStoreError):
            await store.unlock(fresh_key(), "alice")
    finally:
        await store.close()


async def test_sqlite_lock_survives_reopening(tmp_path: Path) -> None:
    """The lock lives in the file: a new store on the same file sees it."""
    path = tmp_path / "shared.db"
    component = lock_component("sqlite", "file", None, path)
    first = lock_stores([component], "app")["file"].store
    second = lock_stores([component], "app")["file"].store
    await first.start()
    await second.start()
    try:
        key = fresh_key()
        assert await first.try_lock(key, "alice", 30)
        assert not await second.try_lock(key, "bob", 30)
        assert await second.unlock(key, "alice") is UnlockStatus.SUCCESS
        assert await first.try_lock(key, "bob", 30)
    finally:
        await first.close()
        await second.close()
