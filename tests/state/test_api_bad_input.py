"""Bad input to the state API on every store: Dapr's 400, and nothing changes. After each
refused request the items saved before are there as they were, nothing else is, and a
query over the store still answers (a refused item that got written anyway used to make
every read of it, and every query, fail until it was deleted)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.state.sidecar import STORES, Sidecar, error_of, running, store_component

S = "statestore"
MALFORMED = "ERR_MALFORMED_REQUEST"
INT64_MAX = str(2**63 - 1)


def upsert(key: str, value: Any = 1, **metadata: str) -> dict[str, Any]:
    request: dict[str, Any] = {"key": key, "value": value}
    if metadata:
        request["metadata"] = metadata
    return {"operation": "upsert", "request": request}


#: (what, path under /v1.0/state/statestore, body, status, errorCode)
BAD: list[tuple[str, str, Any, int, str]] = [
    ("lone surrogate value", "", b'[{"key": "new", "value": "\\ud800"}]', 400, MALFORMED),
    ("lone surrogate key", "", b'[{"key": "new\\ud801", "value": 1}]', 400, MALFORMED),
    ("NUL in a key", "", b'[{"key": "new\\u0000", "value": 1}]', 400, MALFORMED),
    ("NaN value", "", b'[{"key": "new", "value": NaN}]', 400, MALFORMED),
    ("int64 TTL", "", [{"key": "new", "value": 1, "metadata": {"ttlInSeconds": INT64_MAX}}],
     400, MALFORMED),
    ("TTL over Dapr's max", f"?metadata.ttlInSeconds={2**31}", [{"key": "new", "value": 1}],
     400, MALFORMED),
    ("TTL in another script's digits", "", [{"key": "new", "value": 1,
                                             "metadata": {"ttlInSeconds": "٣"}}],
     400, MALFORMED),
    # bulk save writes item by item: the second item's mistakes are found before the first
    ("bad ETag after a good item", "", [{"key": "new", "value": 1},
                                        {"key": "new2", "value": 2, "etag": "nope"}],
     400, "ERR_STATE_SAVE"),
    ("NUL content type after a good item", "",
     [{"key": "new", "value": 1}, {"key": "new2", "value": 2,
                                   "metadata": {"contentType": "text/\u0000"}}],
     400, "ERR_STATE_SAVE"),
    ("transaction with an int64 TTL", "/transaction",
     {"operations": [upsert("new"), upsert("new2", 2, ttlInSeconds=INT64_MAX)]},
     400, MALFORMED),
    ("transaction with a NUL content type", "/transaction",
     {"operations": [upsert("new"), upsert("new2", 2, contentType="\u0000")]},
     400, "ERR_STATE_TRANSACTION"),
    ("transaction with a NUL key", "/transaction",
     {"operations": [upsert("new"), upsert("new\u0000")]}, 400, MALFORMED),
    ("bulk get of a NUL key", "/bulk", {"keys": ["kept", "new\u0000"]}, 400, MALFORMED),
    # the call's metadata is checked even when no item uses it (found by the fuzzer)
    ("no items with a bad TTL", "?metadata.ttlInSeconds=soon", [], 400, MALFORMED),
    ("no operations with a bad TTL", "/transaction?metadata.ttlInSeconds=soon",
     {"operations": []}, 400, MALFORMED),
]


@pytest.fixture(params=STORES)
async def sidecar(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sidecar]:
    component = store_component(request, request.param, tmp_path)
    async with running([component], f"bad-input-{time.time_ns()}") as sidecar:
        yield sidecar


async def query_keys(sidecar: Sidecar) -> list[str] | None:
    """The keys a query over the whole store finds; None for a store without the query API."""
    response = await sidecar.call("POST", f"/v1.0-alpha1/state/{S}/query", {})
    if response.status == 500 and (await response.json())["errorCode"] == \
            "ERR_STATE_STORE_NOT_SUPPORTED":
        return None
    assert response.status == 200, await response.text()
    return sorted(item["key"] for item in (await response.json())["results"])


@pytest.mark.parametrize(("path", "body", "status", "code"),
                         [case[1:] for case in BAD], ids=[case[0] for case in BAD])
async def test_a_refused_request_changes_nothing(
    sidecar: Sidecar, path: str, body: Any, status: int, code: str
) -> None:
    assert (await sidecar.save(S, [{"key": "kept", "value": {"n": 0}}])).status == 204
    etag = (await sidecar.get(S, "kept")).headers["ETag"]
    queried = await query_keys(sidecar)
    response = await sidecar.call("POST", f"/v1.0/state/{S}{path}", body)
    assert await error_of(response) == (status, code)
    kept = await sidecar.get(S, "kept")
    assert (kept.status, kept.headers["ETag"]) == (200, etag)
    for key in ("new", "new2"):
        assert (await sidecar.get(S, key)).status == 204
    assert await query_keys(sidecar) == queried


@pytest.mark.parametrize("key", ["new%00", "a||b"])
async def test_a_get_of_a_key_no_save_could_write_is_a_400(sidecar: Sidecar, key: str) -> None:
    assert await error_of(await sidecar.get(S, key)) == (400, MALFORMED)


async def test_the_largest_ttl_is_daprs(sidecar: Sidecar) -> None:
    saved = await sidecar.save(S, [{"key": "long", "value": 1}],
                               f"?metadata.ttlInSeconds={2**31 - 1}")
    assert saved.status == 204
    got = await sidecar.get(S, "long")
    assert got.status == 200 and "metadata.ttlExpireTime" in got.headers
    assert await query_keys(sidecar) in (None, ["long"])


@pytest.mark.parametrize("filter_", [
    b'{"EQ": {"a": 1000000000000000000000000000000}}',  # beyond SQLite's integers
    b'{"EQ": {"a": NaN}}',
    b'{"EQ": {"a": "x\\u0000"}}',
    b'{"EQ": {"a\\u0000": 1}}',
])
async def test_a_query_no_store_can_run_is_a_400(sidecar: Sidecar, filter_: bytes) -> None:
    response = await sidecar.call("POST", f"/v1.0-alpha1/state/{S}/query",
                                  b'{"filter": ' + filter_ + b"}")
    if await query_keys(sidecar) is None:
        assert await error_of(response) == (500, "ERR_STATE_STORE_NOT_SUPPORTED")
    else:
        assert await error_of(response) == (400, "ERR_STATE_QUERY"), json.dumps(
            filter_.decode())
