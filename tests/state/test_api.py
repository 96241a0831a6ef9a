"""The sidecar's Dapr state API over real HTTP, on every store against its real server."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.state.sidecar import STORES, Sidecar, error_of, running, store_component
from tether.platform.components import Component
from tether.platform.state.registry import open_state_store
from tether.platform.state.store import DeleteOperation, SetOperation

S = "statestore"


@pytest.fixture(params=STORES)
async def sidecar(
    request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Sidecar]:
    component = store_component(request, request.param, tmp_path)
    # a unique app id keeps tests apart on the shared redis server (keyPrefix appid)
    app_id = f"app-{request.node.name[-40:].replace('[', '-').replace(']', '')}-{time.time_ns()}"
    async with running([component], app_id) as sidecar:
        yield sidecar


async def test_save_and_get_return_json_values_as_sent(sidecar: Sidecar) -> None:
    values = {"order": {"id": 7, "items": ["a", "b"], "paid": True}, "name": "Ada",
              "count": 42, "nothing": None, "unicode": "é€"}
    response = await sidecar.save(S, [{"key": k, "value": v} for k, v in values.items()])
    assert response.status == 204
    for key, value in values.items():
        got = await sidecar.get(S, key)
        assert got.status == 200
        assert got.content_type == "application/json"
        assert got.headers["ETag"]
        assert json.loads(await got.read()) == value
    # a string value is stored as its JSON text, quotes included (as Dapr does)
    assert await (await sidecar.get(S, "name")).read() == b'"Ada"'


async def test_get_absent_key_is_204(sidecar: Sidecar) -> None:
    response = await sidecar.get(S, "missing")
    assert response.status == 204
    assert await response.read() == b""


async def test_etags_guard_writes_and_deletes(sidecar: Sidecar) -> None:
    await sidecar.save(S, [{"key": "k", "value": 1}])
    etag = (await sidecar.get(S, "k")).headers["ETag"]
    # a stale ETag is a conflict and changes nothing
    assert (await sidecar.save(S, [{"key": "k", "value": 2, "etag": etag}])).status == 204
    new_etag = (await sidecar.get(S, "k")).headers["ETag"]
    assert new_etag != etag
    stale = await sidecar.save(S, [{"key": "k", "value": 3, "etag": etag}])
    assert await error_of(stale) == (409, "ERR_STATE_SAVE")
    assert json.loads(await (await sidecar.get(S, "k")).read()) == 2
    # an ETag no store could have produced is bad input
    bogus = await sidecar.save(S, [{"key": "k", "value": 3, "etag": "not-an-etag"}])
    assert await error_of(bogus) == (400, "ERR_STATE_SAVE")
    # delete with If-Match
    denied = await sidecar.call("DELETE", f"/v1.0/state/{S}/k", headers={"If-Match": etag})
    assert await error_of(denied) == (409, "ERR_STATE_DELETE")
    assert (await sidecar.get(S, "k")).status == 200
    done = await sidecar.call("DELETE", f"/v1.0/state/{S}/k", headers={"If-Match": new_etag})
    assert done.status == 204
    assert (await sidecar.get(S, "k")).status == 204
    # deleting an absent key without an ETag is fine
    assert (await sidecar.call("DELETE", f"/v1.0/state/{S}/k")).status == 204


async def test_first_write_without_etag_only_creates(sidecar: Sidecar) -> None:
    first = {"key": "fw", "value": "a", "options": {"concurrency": "first-write"}}
    assert (await sidecar.save(S, [first])).status == 204
    again = await sidecar.save(S, [{**first, "value": "b"}])
    assert await error_of(again) == (409, "ERR_STATE_SAVE")
    assert json.loads(await (await sidecar.get(S, "fw")).read()) == "a"


async def test_bulk_get_includes_absent_keys(sidecar: Sidecar) -> None:
    await sidecar.save(S, [{"key": "b1", "value": {"n": 1}}, {"key": "b2", "value": "two"}])
    response = await sidecar.call(
        "POST", f"/v1.0/state/{S}/bulk", {"keys": ["b1", "nope", "b2"], "parallelism": 2}
    )
    assert response.status == 200
    items = await response.json()
    assert [i["key"] for i in items] == ["b1", "nope", "b2"]
    assert items[0]["data"] == {"n": 1} and items[0]["etag"]
    assert items[1] == {"key": "nope"}
    assert items[2]["data"] == "two"
    empty = await sidecar.call("PUT", f"/v1.0/state/{S}/bulk", {"keys": []})
    assert await empty.json() == []


async def test_transaction_is_atomic(sidecar: Sidecar) -> None:
    await sidecar.save(S, [{"key": "t1", "value": 1}, {"key": "t2", "value": 2}])
    etag = (await sidecar.get(S, "t1")).headers["ETag"]
    ok = await sidecar.call("POST", f"/v1.0/state/{S}/transaction", {"operations": [
        {"operation": "upsert", "request": {"key": "t1", "value": 10, "etag": etag}},
        {"operation": "delete", "request": {"key": "t2"}},
        {"operation": "upsert", "request": {"key": "t3", "value": {"x": 3}}},
    ]})
    assert ok.status == 204
    assert json.loads(await (await sidecar.get(S, "t1")).read()) == 10
    assert (await sidecar.get(S, "t2")).status == 204
    # the stale ETag of the last operation fails the whole transaction
    failed = await sidecar.call("POST", f"/v1.0/state/{S}/transaction", {"operations": [
        {"operation": "upsert", "request": {"key": "t4", "value": 4}},
        {"operation": "delete", "request": {"key": "t3"}},
        {"operation": "upsert", "request": {"key": "t1", "value": 11, "etag": etag}},
    ]})
    assert await error_of(failed) == (409, "ERR_STATE_TRANSACTION")
    assert (await sidecar.get(S, "t4")).status == 204
    assert json.loads(await (await sidecar.get(S, "t3")).read()) == {"x": 3}
    assert json.loads(await (await sidecar.get(S, "t1")).read()) == 10


async def test_bad_input_changes_nothing(sidecar: Sidecar) -> None:
    cases = [
        (f"/v1.0/state/{S}", b"not json", "ERR_MALFORMED_REQUEST"),
        (f"/v1.0/state/{S}", {"key": "k"}, "ERR_MALFORMED_REQUEST"),
        (f"/v1.0/state/{S}", [{"key": "ok", "value": 1}, {"value": 2}], "ERR_MALFORMED_REQUEST"),
        (f"/v1.0/state/{S}", [{"key": "ok", "value": 1}, {"key": "a||b", "value": 2}],
         "ERR_MALFORMED_REQUEST"),
        (f"/v1.0/state/{S}", [{"key": "ok", "value": 1, "metadata": {"ttlInSeconds": "x"}}],
         "ERR_MALFORMED_REQUEST"),
        (f"/v1.0/state/{S}", [{"key": "ok", "value": 1, "options": {"concurrency": "any"}}],
         "ERR_MALFORMED_REQUEST"),
        (f"/v1.0/state/{S}", [{"key": "ok", "value": 1, "etag": 5}], "ERR_MALFORMED_REQUEST"),
        (f"/v1.0/state/{S}/transaction", {"operations": [
            {"operation": "upsert", "request": {"key": "ok", "value": 1}},
            {"operation": "merge", "request": {"key": "ok2", "value": 1}},
        ]}, "ERR_NOT_SUPPORTED_STATE_OPERATION"),
        (f"/v1.0/state/{S}/transaction", [1], "ERR_MALFORMED_REQUEST"),
        (f"/v1.0/state/{S}/bulk", {"keys": "ok"}, "ERR_MALFORMED_REQUEST"),
    ]
    for path, body, code in cases:
        response = await sidecar.call("POST", path, body)
        assert await error_of(response) == (400, code), (path, body)
    assert (await sidecar.get(S, "ok")).status == 204
    bad_key = await sidecar.get(S, "a||b")
    assert await error_of(bad_key) == (400, "ERR_MALFORMED_REQUEST")


async def test_unknown_store_is_400(sidecar: Sidecar) -> None:
    for method, path in [("GET", "/v1.0/state/nope/k"), ("POST", "/v1.0/state/nope"),
                         ("DELETE", "/v1.0/state/nope/k"),
                         ("POST", "/v1.0/state/nope/transaction"),
                         ("POST", "/v1.0/state/nope/bulk"),
                         ("POST", "/v1.0-alpha1/state/nope/query")]:
        response = await sidecar.call(method, path, [] if method == "POST" else None)
        assert await error_of(response) == (400, "ERR_STATE_STORE_NOT_FOUND"), path


async def test_ttl_expires_items(sidecar: Sidecar) -> None:
    saved = await sidecar.save(S, [{"key": "short", "value": 1}, {"key": "long", "value": 2}],
                               "?metadata.ttlInSeconds=1")
    assert saved.status == 204
    forever = await sidecar.save(S, [{"key": "kept", "value": 3,
                                      "metadata": {"ttlInSeconds": "-1"}}])
    assert forever.status == 204
    first = await sidecar.get(S, "long")
    assert first.status in (200, 204)  # a loaded machine may already be past the second
    if first.status == 200:
        assert "metadata.ttlExpireTime" in first.headers
    deadline = time.monotonic() + 30
    while (await sidecar.get(S, "short")).status != 204:
        assert time.monotonic() < deadline, "the item never expired"
        await asyncio.sleep(0.2)
    assert (await sidecar.get(S, "kept")).status == 200


async def test_query_api(sidecar: Sidecar) -> None:
    await sidecar.save(S, [
        {"key": "q1", "value": {"city": "Oslo", "n": 1}},
        {"key": "q2", "value": {"city": "Rome", "n": 2}},
        {"key": "q3", "value": {"city": "Oslo", "n": 3}},
    ], "?metadata.contentType=application/json")
    body = {"filter": {"EQ": {"city": "Oslo"}}, "sort": [{"key": "n", "order": "DESC"}]}
    response = await sidecar.call("POST", f"/v1.0-alpha1/state/{S}/query", body)
    if response.status == 500:  # a store without the query API answers as Dapr does
        assert (await response.json())["errorCode"] == "ERR_STATE_STORE_NOT_SUPPORTED"
        return
    assert response.status == 200, await response.text()
    results = (await response.json())["results"]
    assert [r["key"] for r in results] == ["q3", "q1"]
    assert results[0]["data"] == {"city": "Oslo", "n": 3} and results[0]["etag"]
    bad = await sidecar.call("POST", f"/v1.0-alpha1/state/{S}/query", b"{")
    assert await error_of(bad) == (400, "ERR_STATE_QUERY")


async def test_no_state_store_configured() -> None:
    async with running([]) as sidecar:
        response = await sidecar.get(S, "k")
        assert await error_of(response) == (500, "ERR_STATE_STORE_NOT_CONFIGURED")


async def test_key_prefixes_share_or_separate_keys(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")

    def component(name: str, prefix: str | None) -> Component:
        meta = {"connectionString": path}
        if prefix is not None:
            meta["keyPrefix"] = prefix
        return Component(name=name, type="state.sqlite", metadata=meta)

    for prefix, stored in [(None, "a||k"), ("appid", "a||k"), ("name", "shared||k"),
                           ("none", "k"), ("custom", "custom||k")]:
        async with running([component("shared", prefix)], "a") as a, \
                running([component("shared", prefix)], "b") as b:
            await a.save("shared", [{"key": "k", "value": "from a"}])
            seen_by_b = await b.get("shared", "k")
            assert (seen_by_b.status == 200) == (stored != "a||k"), prefix
        raw = await open_state_store(component("check", None))
        try:
            item = await raw.get(stored)
            assert item is not None and item.value == b'"from a"', prefix
            await raw.delete(DeleteOperation(stored))
        finally:
            await raw.close()


async def test_metadata_lists_the_stores_features(sidecar: Sidecar) -> None:
    response = await sidecar.call("GET", "/v1.0/metadata")
    (component,) = [c for c in (await response.json())["components"] if c["name"] == S]
    assert {"ETAG", "TRANSACTIONAL"} <= set(component["capabilities"])
    assert set(component["capabilities"]) == set(sidecar.block.bindings[S].store.features)


async def test_values_that_are_not_json_come_back_as_base64_in_bulk(sidecar: Sidecar) -> None:
    # bytes another client wrote straight into the store (e.g. through an SDK's gRPC)
    store = sidecar.block.bindings[S].store
    assert store is not None
    prefix = sidecar.block.bindings[S].keys.prefix
    await store.set(SetOperation(key=prefix + "raw", value=b"\x00\xffNaN"))
    await store.set(SetOperation(key=prefix + "nan", value=b"NaN"))
    response = await sidecar.call("POST", f"/v1.0/state/{S}/bulk", {"keys": ["raw", "nan"]})
    items = await response.json()  # strict JSON: the answer parses
    assert [base64.b64decode(i["data"]) for i in items] == [b"\x00\xffNaN", b"NaN"]
    got = await sidecar.get(S, "raw")
    assert await got.read() == b"\x00\xffNaN"  # a single get answers the bytes as stored
