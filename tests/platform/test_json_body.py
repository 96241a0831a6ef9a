"""read_json: one way to read a request body as JSON, with one error for every bad body;
and every JSON-body route of the sidecar answering such a body with a 400."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.json_body import MAX_DEPTH, JsonBodyError, read_json
from tether.platform.pubsub import PubSubRegistry
from tether.sidecar import create_app
from tether.sidecar.blocks import build_blocks


def test_reads_json_of_the_kind_asked_for() -> None:
    assert read_json(b'{"a": [1]}', dict) == {"a": [1]}
    assert read_json(b"[1, 2]", list) == [1, 2]
    assert read_json(b"  ", dict, empty={}) == {}


@pytest.mark.parametrize(
    ("body", "kind", "problem"),
    [
        (b"{nope", None, "the body is not valid JSON"),
        (b"\xff\xfe", None, "the body is not valid JSON"),
        (b"", None, "the body is not valid JSON"),
        (b"[1]", dict, "the body must be a JSON object"),
        (b"{}", list, "the body must be a JSON array"),
        # deeper than the parser follows: an error of the body, not a crash of the server
        (b"[" * 100_000 + b"]" * 100_000, None, "the body is nested too deeply"),
        # deeper than later encoders and decoders (a few frames further in) can follow
        (b"[" * 940 + b"]" * 940, None, "the body is nested too deeply"),
        (b'[{"a": ' * 129 + b"1" + b"}]" * 129, None, "the body is nested too deeply"),
        # Python's parser takes these; they are not JSON, and nothing downstream can write them
        (b"NaN", None, "the body is not valid JSON: NaN is not JSON"),
        (b'{"a": [1, -Infinity]}', None, "the body is not valid JSON: -Infinity is not JSON"),
        (b'{"a": "\\ud800"}', None, "the body has a lone surrogate"),
        (b'{"\\udc00": 1}', None, "the body has a lone surrogate"),
        (b'["x\\ud83d"]', None, "the body has a lone surrogate"),
        (b'["\xed\xa0\x80"]', None, "the body is not valid JSON"),  # one UTF-8-encoded
    ],
)
def test_every_bad_body_is_one_error(body: bytes, kind: type | None, problem: str) -> None:
    with pytest.raises(JsonBodyError, match=problem):
        read_json(body, kind)


def test_nesting_up_to_max_depth_is_read() -> None:
    deepest = b"[" * MAX_DEPTH + b"]" * MAX_DEPTH
    assert read_json(deepest) is not None
    many = b"[" + b",".join([b'{"a": [1, {"b": 2}]}'] * 1000) + b"]"  # many, not deep
    assert len(read_json(many)) == 1000
    in_strings = b'["' + b"[{" * 1000 + b'"]'
    assert read_json(in_strings) == ["[{" * 1000]


def test_surrogate_pairs_and_escaped_backslashes_are_text() -> None:
    assert read_json(b'["\\ud83d\\ude80"]') == ["\U0001f680"]
    assert read_json(b'["\\\\ud800"]') == ["\\ud800"]  # a backslash, then "ud800"


# --- every JSON-body route of the sidecar reads its body with read_json -----------------

#: (path, Content-Type) of every route whose body is JSON
JSON_ROUTES = [
    ("/v1.0/state/statestore", None),
    ("/v1.0/state/statestore/bulk", None),
    ("/v1.0/state/statestore/transaction", None),
    ("/v1.0-alpha1/state/statestore/query", None),
    ("/v1.0/publish/pubsub/orders", "application/cloudevents+json"),
    ("/v1.0/publish/bulk/pubsub/orders", None),
    ("/v1.0-alpha1/publish/bulk/pubsub/orders", None),
    ("/v1.0-alpha1/lock/lockstore", None),
    ("/v1.0-alpha1/unlock/lockstore", None),
    ("/v1.0/workflows/dapr/order/start", None),
    ("/v1.0/workflows/dapr/order-1/raiseEvent/paid", None),
]
BAD_BODIES = {
    "deep": b"[" * 100_000 + b"]" * 100_000,
    "nan": b"NaN",
    "lone-surrogate": b'{"key": "\\ud800"}',
}


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    components = [
        Component(name="pubsub", type="pubsub.tether.embedded",
                  metadata={"path": str(tmp_path / "broker.db")}),
        Component(name="statestore", type="state.sqlite",
                  metadata={"connectionString": str(tmp_path / "state.db")}),
        Component(name="lockstore", type="lock.sqlite",
                  metadata={"connectionString": str(tmp_path / "lock.db")}),
    ]
    registry = PubSubRegistry(components)
    blocks = build_blocks(BlockContext("app", components, registry))
    app = create_app(registry, app_id="app", components=components, blocks=blocks)
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        yield client


@pytest.mark.parametrize("body", sorted(BAD_BODIES))
@pytest.mark.parametrize(("path", "content_type"), JSON_ROUTES)
async def test_every_json_route_answers_a_bad_body_with_a_400(
    sidecar: TestClient[Any, Any], path: str, content_type: str | None, body: str
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await sidecar.post(path, data=BAD_BODIES[body], headers=headers)
    assert response.status == 400, await response.text()
    answer = await response.json()
    assert answer["errorCode"].startswith("ERR_") and answer["message"]
