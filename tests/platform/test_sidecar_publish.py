"""The sidecar's Dapr publish API over real HTTP (aiohttp test server on a loopback port),
publishing into the embedded broker (a temp file), the in-memory broker and Redis."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import ClientResponse, ClientSession
from aiohttp.test_utils import TestServer

from tests.brokers.helpers import take
from tether.brokers import Broker
from tether.brokers.memory import MemoryBroker
from tether.platform.components import load_resources
from tether.platform.events import CloudEvent, parse_time
from tether.platform.pubsub import PubSubRegistry, PubSubSpec, open_spec
from tether.sidecar import create_app

APP_ID = "app1"

COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: pubsub}}
spec:
  type: pubsub.tether.embedded
  version: v1
  metadata:
    - {{name: path, value: "{path}"}}
    - {{name: publishingScopes, value: "app1=orders,other,big,sized;app2="}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: {memory}}}
spec:
  type: pubsub.in-memory
  version: v1
  metadata:
    - {{name: protectedTopics, value: secret}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: statestore}}
spec: {{type: state.in-memory, version: v1}}
"""


class Sidecar:
    """A running sidecar and an HTTP client for it."""

    def __init__(self, server: TestServer, session: ClientSession, registry: PubSubRegistry,
                 memory: str) -> None:
        self.server = server
        self.session = session
        self.registry = registry
        self.memory = memory
        self.shutdowns = 0

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    async def post(self, path: str, body: bytes | str = b"", **kwargs: Any) -> ClientResponse:
        data = body.encode() if isinstance(body, str) else body
        # no Content-Type unless the test sets one: aiohttp would add application/octet-stream
        kwargs.setdefault("skip_auto_headers", ["Content-Type"])
        response = await self.session.post(self.url(path), data=data, **kwargs)
        await response.read()
        return response

    async def events(self, pubsub: str, topic: str, count: int) -> list[CloudEvent]:
        """The first ``count`` events of the topic (a new group reads from the start)."""
        broker = await self.registry.broker(pubsub)
        async with broker.subscribe(topic, f"check-{uuid.uuid4().hex}") as subscription:
            return [d.event for d in await take(subscription, count)]

    async def assert_empty(self, pubsub: str, topic: str) -> None:
        """Nothing was published: a marker published now is the topic's first event."""
        marker = CloudEvent(type="marker", source="test")
        await (await self.registry.broker(pubsub)).publish(topic, marker)
        (first,) = await self.events(pubsub, topic, 1)
        assert first.type == "marker"


async def start(
    tmp_path: Path,
    *,
    max_body_size: int = 4 * 1024 * 1024,
    opener: Callable[[PubSubSpec], Broker] = open_spec,
) -> tuple[Sidecar, Callable[[], Any]]:
    memory = f"mem-{uuid.uuid4().hex[:8]}"  # memory:// stores live as long as the process
    folder = tmp_path / "resources"
    folder.mkdir(exist_ok=True)
    (folder / "components.yaml").write_text(
        COMPONENTS.format(path=tmp_path / "broker.db", memory=memory)
    )
    resources = load_resources(folder, APP_ID)
    registry = PubSubRegistry(resources.components_for(APP_ID), opener=opener)
    holder: list[Sidecar] = []

    def on_shutdown() -> None:
        holder[0].shutdowns += 1

    app = create_app(
        registry,
        app_id=APP_ID,
        components=resources.components_for(APP_ID),
        max_body_size=max_body_size,
        on_shutdown=on_shutdown,
    )
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    session = ClientSession()
    sidecar = Sidecar(server, session, registry, memory)
    holder.append(sidecar)

    async def stop() -> None:
        await session.close()
        await server.close()

    return sidecar, stop


@pytest.fixture
async def sidecar(tmp_path: Path) -> AsyncIterator[Sidecar]:
    running, stop = await start(tmp_path)
    yield running
    await stop()


async def error_of(response: ClientResponse) -> tuple[int, str]:
    body = await response.json()
    assert set(body) == {"errorCode", "message"} and body["message"]
    return response.status, body["errorCode"]


# --- publish --------------------------------------------------------------------------------


async def test_json_body_is_wrapped_in_daprs_envelope(sidecar: Sidecar) -> None:
    before = datetime.now(UTC)
    response = await sidecar.post(
        "/v1.0/publish/pubsub/orders",
        json.dumps({"orderId": 7}),
        headers={"Content-Type": "application/json", "traceparent": "00-" + "a" * 32 + "-"
                 + "b" * 16 + "-01"},
    )
    assert response.status == 204
    (event,) = await sidecar.events("pubsub", "orders", 1)
    assert event.data == {"orderId": 7}
    assert (event.source, event.type, event.datacontenttype) == (
        APP_ID, "com.dapr.event.sent", "application/json"
    )
    assert event.extensions["topic"] == "orders"
    assert event.extensions["pubsubname"] == "pubsub"
    assert event.traceparent is not None and event.traceparent.startswith("00-aaaa")
    assert event.extensions["traceid"] == event.traceparent
    assert event.time is not None and event.time >= before.replace(microsecond=0)
    uuid.UUID(event.id)


async def test_body_without_content_type_is_text(sidecar: Sidecar) -> None:
    response = await sidecar.post(
        "/v1.0/publish/pubsub/orders", "hello", skip_auto_headers=["Content-Type"]
    )
    assert response.status == 204
    (event,) = await sidecar.events("pubsub", "orders", 1)
    assert (event.data, event.datacontenttype) == ("hello", "text/plain")


async def test_binary_body_is_kept_as_bytes(sidecar: Sidecar) -> None:
    body = bytes(range(256))
    response = await sidecar.post(
        "/v1.0/publish/pubsub/orders", body, headers={"Content-Type": "application/octet-stream"}
    )
    assert response.status == 204
    (event,) = await sidecar.events("pubsub", "orders", 1)
    assert event.data == body


async def test_metadata_overrides_ttl_and_partition_key(sidecar: Sidecar) -> None:
    before = datetime.now(UTC)
    query = {
        "metadata.cloudevent.id": "my-id",
        "metadata.cloudevent.source": "my-source",
        "metadata.cloudevent.type": "my.type",
        "metadata.cloudevent.subject": "my-subject",
        "metadata.ttlInSeconds": "120",
        "metadata.partitionKey": "customer-9",
    }
    response = await sidecar.post("/v1.0/publish/pubsub/orders", "x", params=query)
    assert response.status == 204
    (event,) = await sidecar.events("pubsub", "orders", 1)
    assert (event.id, event.source, event.type, event.subject) == (
        "my-id", "my-source", "my.type", "my-subject"
    )
    assert event.partitionkey == "customer-9"
    expires = parse_time(event.extensions["expiration"])
    assert (expires - before).total_seconds() >= 119


async def test_callers_cloudevent_is_passed_through_and_completed(sidecar: Sidecar) -> None:
    theirs = {"specversion": "1.0", "id": "e-1", "source": "/billing", "type": "invoice.paid",
              "datacontenttype": "application/json", "data": {"amount": 3}, "ext1": "v"}
    partial = {"data": "just data", "datacontenttype": "text/plain"}
    for body in (theirs, partial):
        response = await sidecar.post(
            "/v1.0/publish/pubsub/orders",
            json.dumps(body),
            headers={"Content-Type": "application/cloudevents+json"},
        )
        assert response.status == 204
    first, second = await sidecar.events("pubsub", "orders", 2)
    assert (first.id, first.source, first.type, first.data) == (
        "e-1", "/billing", "invoice.paid", {"amount": 3}
    )
    assert first.extensions["ext1"] == "v"
    assert first.extensions["topic"] == "orders"
    # Dapr fills what the caller left out
    assert (second.source, second.type, second.data) == (APP_ID, "com.dapr.event.sent",
                                                         "just data")
    uuid.UUID(second.id)


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[1, 2]",
        json.dumps({"specversion": "0.3", "data": 1}),
        json.dumps({"id": 5, "data": 1}),
        json.dumps({"data": 1, "data_base64": "AA=="}),
    ],
)
async def test_invalid_cloudevent_publishes_nothing(sidecar: Sidecar, body: str) -> None:
    response = await sidecar.post(
        "/v1.0/publish/pubsub/orders",
        body,
        headers={"Content-Type": "application/cloudevents+json"},
    )
    # the caller's mistake: a 400 (Dapr answers 500)
    assert await error_of(response) == (400, "ERR_PUBSUB_CLOUD_EVENTS_SER")
    await sidecar.assert_empty("pubsub", "orders")


async def test_raw_payload_is_published_as_is(sidecar: Sidecar) -> None:
    body = b'{"not": "wrapped"}'
    response = await sidecar.post(
        "/v1.0/publish/pubsub/orders",
        body,
        params={"metadata.rawPayload": "true", "metadata.partitionKey": "k"},
        headers={"Content-Type": "application/cloudevents+json"},
    )
    assert response.status == 204
    (event,) = await sidecar.events("pubsub", "orders", 1)
    assert event.data == body  # not parsed as the caller's event, not re-encoded
    assert event.datacontenttype == "application/octet-stream"
    assert event.partitionkey == "k"
    assert "topic" not in event.extensions


async def test_unknown_pubsub_is_404(sidecar: Sidecar) -> None:
    response = await sidecar.post("/v1.0/publish/nope/orders", "x")
    assert await error_of(response) == (404, "ERR_PUBSUB_NOT_FOUND")
    response = await sidecar.post("/v1.0/publish/statestore/orders", "x")
    assert await error_of(response) == (404, "ERR_PUBSUB_NOT_FOUND")


async def test_no_pubsub_component_is_400() -> None:
    server = TestServer(create_app(PubSubRegistry([]), app_id=APP_ID), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            response = await session.post(server.make_url("/v1.0/publish/pubsub/t"), data=b"x")
            assert await error_of(response) == (400, "ERR_PUBSUB_NOT_CONFIGURED")
    finally:
        await server.close()


async def test_empty_names_are_404(sidecar: Sidecar) -> None:
    response = await sidecar.post("/v1.0/publish/pubsub/", "x")
    assert await error_of(response) == (404, "ERR_TOPIC_EMPTY")
    response = await sidecar.post("/v1.0/publish//orders", "x")
    assert await error_of(response) == (404, "ERR_PUBSUB_EMPTY")


async def test_scopes_forbid_and_nothing_is_published(sidecar: Sidecar) -> None:
    # publishingScopes grants app1 only orders, other, big and sized on "pubsub"
    response = await sidecar.post("/v1.0/publish/pubsub/payments", "x")
    assert await error_of(response) == (403, "ERR_PUBSUB_FORBIDDEN")
    await sidecar.assert_empty("pubsub", "payments")
    # a protected topic on the memory component needs an explicit grant
    response = await sidecar.post(f"/v1.0/publish/{sidecar.memory}/secret", "x")
    assert await error_of(response) == (403, "ERR_PUBSUB_FORBIDDEN")
    await sidecar.assert_empty(sidecar.memory, "secret")
    response = await sidecar.post(f"/v1.0/publish/{sidecar.memory}/open", "x")
    assert response.status == 204
    (event,) = await sidecar.events(sidecar.memory, "open", 1)
    assert event.data == "x"


@pytest.mark.parametrize("ttl", ["soon", "-1", "²", str(2**31), "1000000000000"])
async def test_bad_ttl_is_400_and_publishes_nothing(sidecar: Sidecar, ttl: str) -> None:
    response = await sidecar.post(
        "/v1.0/publish/pubsub/orders", "x", params={"metadata.ttlInSeconds": ttl}
    )
    assert await error_of(response) == (400, "ERR_PUBSUB_REQUEST_METADATA")
    await sidecar.assert_empty("pubsub", "orders")


async def test_the_largest_ttl_is_dapr_s(sidecar: Sidecar) -> None:
    response = await sidecar.post(
        "/v1.0/publish/pubsub/orders", "x", params={"metadata.ttlInSeconds": str(2**31 - 1)}
    )
    assert response.status == 204
    (event,) = await sidecar.events("pubsub", "orders", 1)
    assert parse_time(event.extensions["expiration"]).year >= 2026 + 68


@pytest.mark.parametrize("body", [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than the parser follows
    b'{"a": NaN}',
    b'{"a": "\\ud800"}',  # a lone surrogate
    b"{not json",
])
async def test_a_json_body_that_is_not_json_is_published_as_its_text(
    sidecar: Sidecar, body: bytes
) -> None:
    # as Dapr does; as bytes under a JSON content type, subscribers could not decode it
    response = await sidecar.post("/v1.0/publish/pubsub/orders", body,
                                  headers={"Content-Type": "application/json"})
    assert response.status == 204
    (event,) = await sidecar.events("pubsub", "orders", 1)
    assert (event.data, event.datacontenttype) == (body.decode(), "application/json")


@pytest.mark.parametrize("content_type", ["application/json", "text/plain"])
async def test_a_json_or_text_body_that_is_not_utf8_is_refused(
    sidecar: Sidecar, content_type: str
) -> None:
    response = await sidecar.post("/v1.0/publish/pubsub/orders", b"\xff\xfe",
                                  headers={"Content-Type": content_type})
    assert await error_of(response) == (400, "ERR_PUBSUB_CLOUD_EVENTS_SER")
    await sidecar.assert_empty("pubsub", "orders")


async def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    sidecar, stop = await start(tmp_path, max_body_size=1024)
    try:
        response = await sidecar.post("/v1.0/publish/pubsub/big", b"x" * 2048)
        assert await error_of(response) == (413, "ERR_BODY_TOO_LARGE")
        await sidecar.assert_empty("pubsub", "big")
        response = await sidecar.post("/v1.0/publish/pubsub/sized", b"x" * 1000)
        assert response.status == 204
    finally:
        await stop()


class FailingBroker(MemoryBroker):
    async def publish(self, topic: str, event: CloudEvent) -> None:
        raise OSError("disk full")

    async def publish_batch(self, topic: str, events: Any) -> None:
        raise OSError("disk full")


async def test_broker_failure_is_500(tmp_path: Path) -> None:
    sidecar, stop = await start(tmp_path, opener=lambda spec: FailingBroker())
    try:
        response = await sidecar.post("/v1.0/publish/pubsub/orders", "x")
        status, code = await error_of(response)
        assert (status, code) == (500, "ERR_PUBSUB_PUBLISH_MESSAGE")
        response = await sidecar.post(
            "/v1.0/publish/bulk/pubsub/orders",
            json.dumps([{"entryId": "a", "event": "x", "contentType": "text/plain"},
                        {"entryId": "b", "event": {"n": 1}, "contentType": "application/json"}]),
        )
        assert response.status == 500
        body = await response.json()
        assert body["errorCode"] == "ERR_PUBSUB_PUBLISH_MESSAGE"
        assert [e["entryId"] for e in body["failedEntries"]] == ["a", "b"]
        assert all("disk full" in e["error"] for e in body["failedEntries"])
    finally:
        await stop()


# --- bulk -----------------------------------------------------------------------------------


async def test_an_empty_bulk_with_bad_metadata_is_a_400(sidecar: Sidecar) -> None:
    # the call's metadata is checked even when no entry uses it (found by the fuzzer)
    for param in ({"metadata.ttlInSeconds": "abc"}, {"metadata.deliverAfter": "soon"}):
        response = await sidecar.post("/v1.0/publish/bulk/pubsub/orders", "[]", params=param)
        assert response.status == 400
        assert (await response.json())["errorCode"] == "ERR_PUBSUB_REQUEST_METADATA"


@pytest.mark.parametrize("version", ["v1.0", "v1.0-alpha1"])
async def test_bulk_publish(sidecar: Sidecar, version: str) -> None:
    entries = [
        {"entryId": "1", "event": {"n": 1}, "contentType": "application/json"},
        {"entryId": "2", "event": "two", "contentType": "text/plain",
         "metadata": {"partitionKey": "p2"}},
        {"entryId": "3", "contentType": "application/cloudevents+json",
         "event": {"specversion": "1.0", "id": "ce-3", "source": "/s", "type": "t3",
                   "data": {"n": 3}}},
        {"entryId": "4", "event": base64.b64encode(b"\x00\x01").decode(),
         "contentType": "text/plain"},
    ]
    response = await sidecar.post(
        f"/{version}/publish/bulk/pubsub/orders",
        json.dumps(entries),
        params={"metadata.cloudevent.source": "bulk-src"},
    )
    assert response.status == 204
    events = await sidecar.events("pubsub", "orders", 4)
    by_data = {json.dumps(e.data, default=str): e for e in events}
    one = by_data[json.dumps({"n": 1})]
    assert (one.source, one.datacontenttype) == ("bulk-src", "application/json")
    two = by_data[json.dumps("two")]
    assert two.partitionkey == "p2"
    three = by_data[json.dumps({"n": 3})]
    assert (three.id, three.type) == ("ce-3", "t3")


async def test_bulk_entries_get_their_own_ids_and_metadata(sidecar: Sidecar) -> None:
    entries = [
        {"entryId": str(i), "event": {"n": i, "nested": [1.5, None, "x"]},
         "contentType": "application/json"}
        for i in range(50)
    ]
    entries.append({"entryId": "own", "event": {"n": "own"}, "contentType": "application/json",
                    "metadata": {"partitionKey": "own-key", "ttlInSeconds": "60"}})
    entries.append({"entryId": "raw", "event": {"n": "raw"}, "contentType": "application/json",
                    "metadata": {"rawPayload": "true"}})
    response = await sidecar.post(
        "/v1.0/publish/bulk/pubsub/orders",
        json.dumps(entries),
        params={"metadata.partitionKey": "shared-key"},
    )
    assert response.status == 204
    events = await sidecar.events("pubsub", "orders", len(entries))
    ids = [e.id for e in events]
    assert len(set(ids)) == len(ids)
    assert all(uuid.UUID(i).version == 4 for i in ids)
    plain = [e for e in events if isinstance(e.data, dict)]
    assert sorted(e.data["n"] for e in plain if e.data["n"] != "own") == list(range(50))
    for e in plain:
        if e.data["n"] == "own":
            assert e.partitionkey == "own-key" and "expiration" in e.extensions
        else:
            assert e.data["nested"] == [1.5, None, "x"]
            assert e.partitionkey == "shared-key" and "expiration" not in e.extensions
            assert (e.extensions["topic"], e.extensions["pubsubname"], e.datacontenttype) == (
                "orders", "pubsub", "application/json")
    [raw] = [e for e in events if isinstance(e.data, bytes)]
    assert json.loads(raw.data) == {"n": "raw"}


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "ERR_PUBSUB_EVENTS_SER"),
        ('{"entryId": "1"}', 400, "ERR_PUBSUB_EVENTS_SER"),
        ('[{"event": "x", "contentType": "text/plain"}]', 400, "ERR_PUBSUB_EVENTS_SER"),
        ('[{"entryId": "1", "event": "x", "contentType": "text/plain"},'
         ' {"entryId": "1", "event": "y", "contentType": "text/plain"}]',
         400, "ERR_PUBSUB_EVENTS_SER"),
        ('[{"entryId": "1", "event": "x", "contentType": "text/plain"},'
         ' {"entryId": "2", "event": {"specversion": "9"},'
         ' "contentType": "application/cloudevents+json"}]',
         400, "ERR_PUBSUB_CLOUD_EVENTS_SER"),
        ('[{"entryId": "1", "event": "\\ud800", "contentType": "text/plain"}]',
         400, "ERR_PUBSUB_EVENTS_SER"),
        ('[{"entryId": "1", "event": "x", "contentType": "text/plain",'
         ' "metadata": {"ttlInSeconds": "99999999999999"}}]',
         400, "ERR_PUBSUB_REQUEST_METADATA"),
    ],
)
async def test_bad_bulk_entry_publishes_nothing(
    sidecar: Sidecar, body: str, status: int, code: str
) -> None:
    response = await sidecar.post("/v1.0/publish/bulk/pubsub/orders", body)
    assert await error_of(response) == (status, code)
    await sidecar.assert_empty("pubsub", "orders")


async def test_bulk_errors_before_the_body(sidecar: Sidecar) -> None:
    response = await sidecar.post("/v1.0/publish/bulk/nope/orders", "[]")
    assert await error_of(response) == (404, "ERR_PUBSUB_NOT_FOUND")
    response = await sidecar.post("/v1.0/publish/bulk/pubsub/payments", "[]")
    assert await error_of(response) == (403, "ERR_PUBSUB_FORBIDDEN")


# --- health, metadata, shutdown -------------------------------------------------------------


async def test_health_metadata_and_shutdown(sidecar: Sidecar) -> None:
    for path in ("/v1.0/healthz", "/v1.0/healthz/outbound"):
        response = await sidecar.session.get(sidecar.url(path))
        assert response.status == 204
    response = await sidecar.session.put(sidecar.url("/v1.0/metadata/owner"), data=b"team-a")
    assert response.status == 204
    response = await sidecar.session.get(sidecar.url("/v1.0/metadata"))
    assert response.status == 200
    body = await response.json()
    assert body["id"] == APP_ID
    assert body["components"] == [
        {"name": "pubsub", "type": "pubsub.tether.embedded", "version": "v1",
         "capabilities": []},
        {"name": sidecar.memory, "type": "pubsub.in-memory", "version": "v1",
         "capabilities": []},
        {"name": "statestore", "type": "state.in-memory", "version": "v1", "capabilities": []},
    ]
    assert body["subscriptions"] == []
    assert body["extended"] == {"owner": "team-a"}
    assert sidecar.shutdowns == 0
    response = await sidecar.post("/v1.0/shutdown")
    assert response.status == 204
    assert sidecar.shutdowns == 1


# --- a real Redis ---------------------------------------------------------------------------


async def test_publish_through_a_redis_component(tmp_path: Path, redis_address: str) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}"
    (tmp_path / "redis.yaml").write_text(f"""\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: redis-pubsub}}
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - {{name: redisHost, value: "{redis_address}"}}
    - {{name: redisDB, value: "0"}}
""")
    resources = load_resources(tmp_path / "redis.yaml", APP_ID)
    registry = PubSubRegistry(resources.components)
    server = TestServer(create_app(registry, app_id=APP_ID), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session:
            response = await session.post(
                server.make_url(f"/v1.0/publish/redis-pubsub/{prefix}-orders"),
                data=json.dumps({"n": 1}),
                headers={"Content-Type": "application/json"},
                params={"metadata.partitionKey": "k1"},
            )
            assert response.status == 204
        broker = await registry.broker("redis-pubsub")
        assert broker.url.startswith("redis://")
        async with broker.subscribe(f"{prefix}-orders", "g") as subscription:
            (delivery,) = await take(subscription, 1)
        assert delivery.event.data == {"n": 1}
        assert delivery.event.partitionkey == "k1"
        assert delivery.event.extensions["pubsubname"] == "redis-pubsub"
    finally:
        await server.close()  # closes the registry's brokers on cleanup
