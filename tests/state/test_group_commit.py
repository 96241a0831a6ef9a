"""Group commit in the SQLite state store: concurrent writes share one transaction, and each
keeps its own ETag or its own error."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from tether.platform.components import Component
from tether.platform.state.registry import open_state_store
from tether.platform.state.store import (
    DeleteOperation,
    ETagMismatchError,
    OutboxRecord,
    SetOperation,
    StateStoreError,
)
from tether.platform.state.stores.sqlite import SqliteStateStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStateStore]:
    opened = await open_state_store(Component(
        name="s", type="state.sqlite",
        metadata={"connectionString": str(tmp_path / "state.db"), "busyTimeout": "200ms"},
    ))
    assert isinstance(opened, SqliteStateStore)
    yield opened
    await opened.close()


def group_sizes(store: SqliteStateStore) -> list[int]:
    sizes: list[int] = []
    run = store._grouped._run

    async def counting(writes: Sequence[object]) -> Sequence[object]:
        sizes.append(len(writes))
        return await run(writes)  # type: ignore[arg-type]

    store._grouped._run = counting  # type: ignore[assignment]
    return sizes


@pytest.mark.parametrize("grouping", [True, False], ids=["grouped", "alone"])
async def test_concurrent_saves_each_get_their_etag(
    store: SqliteStateStore, grouping: bool
) -> None:
    store._grouped.grouping = grouping
    sizes = group_sizes(store)
    etags = await asyncio.gather(*(
        store.set(SetOperation(f"k{i}", b"v%d" % i)) for i in range(100)
    ))
    assert len(set(etags)) == 100
    assert (len(sizes) < 10) if grouping else sizes == [1] * 100
    for i, etag in enumerate(etags):
        item = await store.get(f"k{i}")
        assert item is not None and item.value == b"v%d" % i and item.etag == etag


async def test_an_etag_mismatch_fails_only_its_request(store: SqliteStateStore) -> None:
    old = await store.set(SetOperation("guarded", b"1"))
    await store.set(SetOperation("exists", b"1"))
    stale = "0" * 32
    sizes = group_sizes(store)
    results = await asyncio.gather(
        store.set(SetOperation("a", b"a")),
        store.set(SetOperation("guarded", b"2", etag=stale)),  # wrong ETag
        store.set(SetOperation("exists", b"2", first_write=True)),  # first-write, exists
        store.transact([SetOperation("t1", b"x"), SetOperation("guarded", b"3", etag=stale)]),
        store.transact([SetOperation("t2", b"y")],
                       [OutboxRecord("o1", "pubsub", "topic", b"event")]),
        store.delete(DeleteOperation("guarded", etag=old)),
        return_exceptions=True,
    )
    assert sizes == [6]  # one transaction
    assert isinstance(results[0], str)
    assert isinstance(results[1], ETagMismatchError)
    assert isinstance(results[2], ETagMismatchError)
    assert isinstance(results[3], ETagMismatchError)
    assert results[4] == [results[4][0]] and isinstance(results[4][0], str)  # type: ignore[index]
    assert results[5] is None
    assert await store.get("guarded") is None  # the delete with the right ETag went through
    assert (await store.get("exists")).value == b"1"  # type: ignore[union-attr]
    assert await store.get("t1") is None  # its transaction was rolled back as a whole
    assert (await store.get("t2")).value == b"y"  # type: ignore[union-attr]
    assert [r.id for r in await store.outbox_pending(10)] == ["o1"]


async def test_later_writes_in_a_group_see_earlier_ones(store: SqliteStateStore) -> None:
    first = await store.set(SetOperation("k", b"0"))
    results = await asyncio.gather(
        store.set(SetOperation("k", b"1", etag=first)),
        store.set(SetOperation("k", b"2", etag=first)),  # first's ETag is gone by now
        return_exceptions=True,
    )
    assert isinstance(results[0], str) and isinstance(results[1], ETagMismatchError)
    assert (await store.get("k")).value == b"1"  # type: ignore[union-attr]


async def test_a_locked_file_fails_every_write(store: SqliteStateStore, tmp_path: Path) -> None:
    blocker = sqlite3.connect(tmp_path / "state.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        results = await asyncio.wait_for(asyncio.gather(
            *(store.set(SetOperation(f"k{i}", b"v")) for i in range(10)),
            return_exceptions=True,
        ), 30)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert all(isinstance(r, StateStoreError) for r in results), results
    assert isinstance(await store.set(SetOperation("k0", b"v")), str)


async def test_a_cancelled_writer_does_not_cancel_the_others(store: SqliteStateStore) -> None:
    tasks = [asyncio.ensure_future(store.set(SetOperation(f"k{i}", b"v"))) for i in range(20)]
    await asyncio.sleep(0)
    tasks[3].cancel()
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[3], asyncio.CancelledError)
    assert all(isinstance(r, str) for i, r in enumerate(results) if i != 3)
    for i in range(20):
        if i != 3:
            assert await store.get(f"k{i}") is not None
