"""Commands become CloudEvents: the change feed and Dapr's transactional outbox, through a
real sidecar, on every store against its real server."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.state.sidecar import STORES, error_of, memory_pubsub, running, store_component
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.platform.state.changes import CHANGED_TYPE
from tether.schemas import validate_event
from tether.sidecar.state import state_block

S = "statestore"


def _components(
    request: pytest.FixtureRequest, kind: str, tmp_path: Path, **metadata: str
) -> tuple[list[Component], str]:
    pubsub = f"ps-{uuid.uuid4().hex[:8]}"
    store = store_component(request, kind, tmp_path, **{
        k: v.replace("PUBSUB", pubsub) for k, v in metadata.items()
    })
    return [store, memory_pubsub(pubsub)], pubsub


@pytest.mark.parametrize("kind", STORES)
async def test_every_change_publishes_a_state_changed_event(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    components, pubsub = _components(request, kind, tmp_path, changeFeedPubsub="PUBSUB",
                                     changeFeedTopic="changes")
    app_id = f"app-{uuid.uuid4().hex[:8]}"
    async with running(components, app_id) as sidecar:
        assert (await sidecar.save(S, [{"key": "a", "value": 1}])).status == 204
        etag = (await sidecar.get(S, "a")).headers["ETag"]
        # a failed write has no event
        conflict = await sidecar.save(S, [{"key": "a", "value": 2, "etag": uuid.uuid4().hex}])
        assert conflict.status == 409
        deleted = await sidecar.call("DELETE", f"/v1.0/state/{S}/a", headers={"If-Match": etag})
        assert deleted.status == 204
        txn = await sidecar.call("POST", f"/v1.0/state/{S}/transaction", {"operations": [
            {"operation": "upsert", "request": {"key": "b", "value": "x"}},
            {"operation": "delete", "request": {"key": "c"}},
        ]})
        assert txn.status == 204
        events = await sidecar.events(pubsub, "changes", 4)
    # order holds per key (the partition key), not across keys
    by_key: dict[str, list[str]] = {}
    for e in events:
        by_key.setdefault(e.data["key"], []).append(e.data["operation"])
    assert by_key == {"a": ["upsert", "delete"], "b": ["upsert"], "c": ["delete"]}
    events.sort(key=lambda e: (e.data["key"], e.data["operation"] == "delete"))
    for event in events:
        assert event.type == CHANGED_TYPE
        assert event.source == app_id
        assert event.subject == event.data["key"]
        assert event.partitionkey == f"{app_id}||{event.data['key']}"
        assert event.data["store"] == S
        assert validate_event(event) is True
    assert events[0].data["etag"] == etag  # the ETag the write gave the key
    assert events[1].data["etag"] is None  # a deleted key has no ETag
    assert events[2].data["transaction"] == events[3].data["transaction"] is not None


@pytest.mark.parametrize("kind", STORES)
async def test_a_change_events_etag_is_the_one_a_get_returns(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    components, pubsub = _components(request, kind, tmp_path, changeFeedPubsub="PUBSUB",
                                     changeFeedTopic="changes")
    #: per key, the ETag a GET answered after each upsert (None after a delete)
    seen: dict[str, list[str | None]] = {}
    async with running(components) as sidecar:
        async def got(*keys: str) -> None:
            for key in keys:
                response = await sidecar.get(S, key)
                seen.setdefault(key, []).append(response.headers.get("ETag"))

        assert (await sidecar.save(S, [{"key": "a", "value": 1}])).status == 204
        await got("a")
        # a save with a precondition: the event names the new ETag, not the precondition
        save = await sidecar.save(S, [{"key": "a", "value": 2, "etag": seen["a"][-1]}])
        assert save.status == 204
        await got("a")
        assert (await sidecar.save(S, [{"key": "b", "value": "x"},
                                       {"key": "c", "value": "y"}])).status == 204
        await got("b", "c")
        txn = await sidecar.call("POST", f"/v1.0/state/{S}/transaction", {"operations": [
            {"operation": "upsert", "request": {"key": "d", "value": 1}},
            {"operation": "upsert", "request": {"key": "a", "value": 3,
                                                "etag": seen["a"][-1]}},
            {"operation": "delete", "request": {"key": "b"}},
            {"operation": "upsert", "request": {"key": "d", "value": 2}},
        ]})
        assert txn.status == 204
        await got("a", "b", "d")
        deleted = await sidecar.call("DELETE", f"/v1.0/state/{S}/c",
                                     headers={"If-Match": seen["c"][-1] or ""})
        assert deleted.status == 204
        await got("c")
        events = await sidecar.events(pubsub, "changes", 9)
    published: dict[str, list[str | None]] = {}
    for event in events:  # in order per key (the partition key)
        published.setdefault(event.data["key"], []).append(event.data["etag"])
    d_first, d_last = published["d"]
    # d was written twice in one transaction: its GET answers the last write's ETag
    assert d_first is not None and d_first != d_last
    published["d"] = [d_last]
    assert published == seen
    assert all(e is not None for key in "ad" for e in seen[key])
    assert seen["b"][-1] is None and seen["c"][-1] is None


@pytest.mark.parametrize("kind", STORES)
async def test_outbox_publishes_a_transactions_upserts(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    components, pubsub = _components(request, kind, tmp_path, outboxPublishPubsub="PUBSUB",
                                     outboxPublishTopic="orders", outboxPubsub="PUBSUB",
                                     outboxDiscardWhenMissingState="true")
    async with running(components, "shop") as sidecar:
        def txn(*ops: dict[str, Any]) -> dict[str, Any]:
            return {"operations": list(ops)}

        failed = await sidecar.call("POST", f"/v1.0/state/{S}/transaction", txn(
            {"operation": "upsert", "request": {"key": "o0", "value": {"lost": True}}},
            {"operation": "upsert", "request": {"key": "o1", "value": 1,
                                                "etag": uuid.uuid4().hex}},
        ))
        assert await error_of(failed) == (409, "ERR_STATE_TRANSACTION")
        ok = await sidecar.call("POST", f"/v1.0/state/{S}/transaction", txn(
            {"operation": "upsert", "request": {"key": "o1", "value": {"id": 1, "secret": "s"}}},
            {"operation": "upsert", "request": {"key": "o1", "value": {"id": 1},
                                                "metadata": {"outbox.projection": "true"}}},
            {"operation": "upsert", "request": {"key": "o2", "value": "plain text"}},
            {"operation": "delete", "request": {"key": "o3"}},
        ), headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
        assert ok.status == 204
        # the projection was published, not saved
        assert (await sidecar.call("GET", f"/v1.0/state/{S}/o1")).status == 200
        saved = await (await sidecar.get(S, "o1")).json()
        assert saved == {"id": 1, "secret": "s"}
        orphan = await sidecar.call("POST", f"/v1.0/state/{S}/transaction", txn(
            {"operation": "upsert", "request": {"key": "o9", "value": 1,
                                                "metadata": {"outbox.projection": "true"}}},
        ))
        assert orphan.status == 400
        last = await sidecar.call("POST", f"/v1.0/state/{S}/transaction", txn(
            {"operation": "upsert", "request": {"key": "o4", "value": [4]}},
        ))
        assert last.status == 204
        events = await sidecar.events(pubsub, "orders", 3)
    # the failed transaction's upsert never shows (the relay publishes in commit order, so
    # it would have come before the last transaction's event)
    events.sort(key=lambda e: str(e.data))
    assert [e.data for e in events] == [[4], "plain text", {"id": 1}]
    first = events[2]
    assert first.type == "com.dapr.event.sent" and first.source == "shop"
    assert first.id.startswith("outbox-")
    assert first.extensions["topic"] == "orders"
    assert first.extensions["pubsubname"] == pubsub
    assert first.traceparent == "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    assert events[1].datacontenttype == "text/plain"
    assert events[0].partitionkey == "shop||o4"


def test_half_configured_feeds_stop_the_sidecar() -> None:
    registry = PubSubRegistry([memory_pubsub("ps")])
    bad = [
        {"outboxPublishPubsub": "ps"},
        {"changeFeedTopic": "t"},
        {"outboxPublishPubsub": "nope", "outboxPublishTopic": "t"},
        {"changeFeedPubsub": "nope", "changeFeedTopic": "t"},
        {"keyPrefix": "a||b"},
    ]
    for metadata in bad:
        component = Component(name="s", type="state.in-memory", metadata=metadata)
        with pytest.raises(BlockConfigError):
            state_block(BlockContext("app", [component], registry))
