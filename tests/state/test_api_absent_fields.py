"""A JSON field of the state API given a value of the wrong kind is refused, even a falsy
one (``"keys": ""``, ``"page": false``): only an absent field or null means "not given".
Found by the fuzzer (tests/api/test_fuzz.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.state.sidecar import Sidecar, error_of, running, store_component


@pytest.fixture
async def sidecar(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Sidecar]:
    async with running([store_component(request, "memory", tmp_path)]) as sidecar:
        yield sidecar


@pytest.mark.parametrize("keys", ["", 0, False, {}])
async def test_bulk_get_refuses_keys_that_are_not_an_array(sidecar: Sidecar, keys: Any) -> None:
    response = await sidecar.call("POST", "/v1.0/state/statestore/bulk", {"keys": keys})
    assert await error_of(response) == (400, "ERR_MALFORMED_REQUEST")


async def test_bulk_get_takes_null_keys_as_none(sidecar: Sidecar) -> None:
    response = await sidecar.call("POST", "/v1.0/state/statestore/bulk", {"keys": None})
    assert response.status == 200
    assert await response.json() == []


@pytest.mark.parametrize("body", [{"page": False}, {"page": ""}, {"page": 0},
                                  {"sort": False}, {"sort": ""}, {"sort": {}}])
async def test_query_refuses_page_and_sort_of_the_wrong_kind(sidecar: Sidecar,
                                                              body: dict[str, Any]) -> None:
    response = await sidecar.call("POST", "/v1.0-alpha1/state/statestore/query", body)
    assert await error_of(response) == (400, "ERR_STATE_QUERY")


async def test_query_takes_null_page_and_sort_as_none(sidecar: Sidecar) -> None:
    await sidecar.save("statestore", [{"key": "k", "value": 1}])
    response = await sidecar.call("POST", "/v1.0-alpha1/state/statestore/query",
                                  {"filter": None, "sort": None, "page": None})
    assert response.status == 200
    assert [r["key"] for r in (await response.json())["results"]] == ["k"]
