"""The fast read paths: ``get_state`` as a plain GET (ETag and metadata from the headers),
the state routes' order, and the SQLite store's reads on the event loop."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import tether
from tests.state.sidecar import STORES, Sidecar, running, store_component
from tether.platform.state.store import SetOperation, StateStoreError
from tether.platform.state.stores.sqlite import LOOP_READ_KEYS, SqliteStateStore

S = "statestore"


@pytest.fixture(params=STORES)
async def sidecar(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sidecar]:
    async with running([store_component(request, request.param, tmp_path)]) as sidecar:
        yield sidecar


async def test_get_state_reads_etag_and_metadata_from_the_headers(sidecar: Sidecar) -> None:
    async with tether.AsyncClient(sidecar.url("")) as client:
        await client.save_state(S, "plain", {"n": 1})
        got = await client.get_state(S, "plain")
        assert got.key == "plain" and got.json() == {"n": 1} and got.etag
        # the ETag read from the header is the one the store checks
        await client.save_state(S, "plain", {"n": 2}, etag=got.etag)
        assert (await client.get_state(S, "plain")).etag != got.etag
        await client.save_state(S, "ttl", "soon", state_metadata={"ttlInSeconds": "3600"})
        ttl = await client.get_state(S, "ttl")
        assert ttl.json() == "soon" and "ttlExpireTime" in ttl.metadata
        missing = await client.get_state(S, "missing")
        assert (missing.found, missing.data, missing.etag, missing.key) == (
            False, b"", None, "missing")

    def sync() -> tuple[Any, str | None, bool]:
        with tether.Client(sidecar.url("")) as client:
            got = client.get_state(S, "plain")
            return got.json(), got.etag, client.get_state(S, "missing").found

    value, etag, found = await asyncio.to_thread(sync)
    assert value == {"n": 2} and etag and not found


@pytest.mark.parametrize("key", ["bulk", "transaction", "a b/c", "ключ"])
async def test_keys_named_like_routes_or_needing_quoting(sidecar: Sidecar, key: str) -> None:
    async with tether.AsyncClient(sidecar.url("")) as client:
        await client.save_state(S, key, [key])
        got = await client.get_state(S, key)
        assert got.json() == [key]
        (bulk,) = await client.get_bulk_state(S, [key])
        assert bulk.json() == [key] and bulk.etag == got.etag
        await client.delete_state(S, key, etag=got.etag)
        assert not (await client.get_state(S, key)).found


async def test_every_state_route_answers_its_methods(sidecar: Sidecar) -> None:
    for method in ("POST", "PUT"):
        saved = await sidecar.call(method, f"/v1.0/state/{S}", [{"key": "r", "value": 1}])
        assert saved.status == 204
        bulk = await sidecar.call(method, f"/v1.0/state/{S}/bulk", {"keys": ["r"]})
        assert bulk.status == 200 and (await bulk.json())[0]["data"] == 1
        txn = await sidecar.call(method, f"/v1.0/state/{S}/transaction", {"operations": [
            {"operation": "upsert", "request": {"key": "t", "value": 2}}]})
        assert txn.status == 204
    # a GET of a bulk/transaction path reads the key of that name; other methods: 405
    assert (await sidecar.get(S, "transaction")).status == 204
    assert (await sidecar.call("PATCH", f"/v1.0/state/{S}/r")).status == 405
    assert (await sidecar.call("GET", f"/v1.0/state/{S}")).status == 405


# --- SQLite: reads on the event loop -------------------------------------------------------

async def _open(path: Path) -> SqliteStateStore:
    return await SqliteStateStore.open(path, table="state", metadata_table="state_meta",
                                       busy_timeout=30.0)


async def test_sqlite_reads_see_writes_of_other_connections_at_once(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    reader, writer = await _open(path), await _open(path)
    try:
        for n in range(20):
            etag = await writer.set(SetOperation(f"k{n % 3}", str(n).encode()))
            got = await reader.get(f"k{n % 3}")
            assert got is not None and (got.value, got.etag) == (str(n).encode(), etag)
        keys = [f"k{n % 3}" for n in range(LOOP_READ_KEYS + 5)] + ["absent"]
        found = await reader.bulk_get(keys)  # more keys than the loop reads: the worker
        assert [i.key if i else None for i in found] == [*keys[:-1], None]
    finally:
        await reader.close()
        await writer.close()


async def test_sqlite_reads_do_not_wait_for_a_writer(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await _open(path)
    await store.set(SetOperation("k", b"1"))
    # another connection holds the write lock with an uncommitted change: a WAL reader
    # sees the last committed value without waiting
    other = sqlite3.connect(path, isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE state SET value = '2' WHERE key = 'k'")
        got = await store.get("k")
        assert got is not None and got.value == b"1"
        other.execute("COMMIT")
        got = await store.get("k")
        assert got is not None and got.value == b"2"
    finally:
        other.close()
        await store.close()
    with pytest.raises(StateStoreError):
        await store.get("k")


async def test_a_sqlite_store_opened_in_one_thread_reads_in_another(tmp_path: Path) -> None:
    store = await _open(tmp_path / "s.db")
    try:
        await store.set(SetOperation("k", b"1"))

        def elsewhere() -> bytes | None:
            got = asyncio.run(store.get("k"))
            return None if got is None else got.value

        assert await asyncio.to_thread(elsewhere) == b"1"
    finally:
        await store.close()


class _BusyConnection(sqlite3.Connection):
    """A read connection that SQLite answers "database is locked" (a WAL recovery in
    another process), which no test can bring about on demand."""

    def execute(self, *args: Any, **kwargs: Any) -> sqlite3.Cursor:
        raise sqlite3.OperationalError("database is locked")


async def test_a_busy_sqlite_read_goes_to_the_worker_thread(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = await _open(path)
    try:
        await store.set(SetOperation("k", b"1"))
        busy = sqlite3.connect(path, factory=_BusyConnection)
        store._reader, real = busy, store._reader
        try:
            got = await store.get("k")
            assert got is not None and got.value == b"1"
            assert [i and i.value for i in await store.bulk_get(["k", "x"])] == [b"1", None]
        finally:
            store._reader = real
            busy.close()
    finally:
        await store.close()
