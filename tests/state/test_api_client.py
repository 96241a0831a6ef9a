"""``tether.Client`` and ``tether.AsyncClient`` state methods against a real sidecar with the
state block (the sync client runs in a thread while the sidecar serves on the loop)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

import tether
from tests.state.sidecar import Sidecar, running, store_component
from tether.sdk.client import (
    StateItem,
    TetherApiError,
    TransactionalStateOperation,
)

S = "statestore"


@pytest.fixture(params=["memory", "sqlite"])
async def sidecar(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sidecar]:
    async with running([store_component(request, request.param, tmp_path)]) as sidecar:
        yield sidecar


async def test_async_client_state(sidecar: Sidecar) -> None:
    async with tether.AsyncClient(sidecar.url("")) as client:
        await client.save_state(S, "order", {"id": 1, "items": ["a"]})
        got = await client.get_state(S, "order")
        assert got.found and got.json() == {"id": 1, "items": ["a"]} and got.etag
        # the ETag guards the next write
        await client.save_state(S, "order", {"id": 1, "paid": True}, etag=got.etag)
        with pytest.raises(TetherApiError) as conflict:
            await client.save_state(S, "order", {"id": 2}, etag=got.etag)
        assert (conflict.value.status, conflict.value.error_code) == (409, "ERR_STATE_SAVE")
        with pytest.raises(TetherApiError):
            await client.save_state(S, "fresh", 1, concurrency="first-write")
            await client.save_state(S, "fresh", 2, concurrency="first-write")
        await client.save_bulk_state(S, [StateItem("a", "text"), StateItem("b", b"\x00\x01")])
        items = await client.get_bulk_state(S, ["a", "b", "missing"])
        assert [i.json() for i in items[:2]] == ["text", "AAE="]  # bytes as base64, as Go
        assert not items[2].found and items[2].data == b""
        assert not (await client.get_state(S, "missing")).found
        await client.execute_state_transaction(S, [
            TransactionalStateOperation("a", operation_type="delete"),
            TransactionalStateOperation("c", {"n": 3}),
        ])
        assert not (await client.get_state(S, "a")).found
        assert (await client.get_state(S, "c")).json() == {"n": 3}
        await client.delete_state(S, "c")
        assert not (await client.get_state(S, "c")).found
        await client.save_state(S, "q1", {"city": "Oslo"},
                                state_metadata={"contentType": "application/json"})
        results, token = await client.query_state(S, {"filter": {"EQ": {"city": "Oslo"}}})
        assert [r.key for r in results] == ["q1"] and token is None


async def test_sync_client_state(sidecar: Sidecar) -> None:
    def work() -> None:
        with tether.Client(sidecar.url("")) as client:
            client.save_state(S, "k", [1, 2])
            got = client.get_state(S, "k")
            assert got.json() == [1, 2]
            with pytest.raises(TetherApiError) as denied:
                client.delete_state(S, "k", etag="0" * 32)
            assert denied.value.status == 409
            client.delete_state(S, "k", etag=got.etag)
            assert not client.get_state(S, "k").found
            with pytest.raises(TetherApiError) as unknown:
                client.get_state("nope", "k")
            assert (unknown.value.status, unknown.value.error_code) == (
                400, "ERR_STATE_STORE_NOT_FOUND")

    await asyncio.to_thread(work)
