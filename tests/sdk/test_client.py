"""tether.Client and tether.AsyncClient against a real sidecar: the aiohttp app of
tether.sidecar served on a loopback port from a thread of its own (so the blocking
client can call it), publishing into the embedded broker (a temp file), the in-memory broker
and an unreachable Redis; and once against a real ``tether run`` process."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest
from aiohttp import web

import tether
from tests.brokers.helpers import take
from tether.brokers import open_broker
from tether.brokers.memory import _named_stores
from tether.cli.run import free_port
from tether.platform.components import load_resources
from tether.platform.events import CloudEvent, parse_time
from tether.platform.pubsub import PubSubRegistry
from tether.sdk.client import (
    FailedEntry,
    PublishEntry,
    SidecarUnavailableError,
    TetherApiError,
    resolve_settings,
)
from tether.sidecar import create_app
from tether.sidecar.middlewares import api_token_check

APP_ID = "client-app"
WAIT = 60.0  # a ceiling for things that should happen, never an assertion about speed
T = TypeVar("T")

COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: pubsub}}
spec:
  type: pubsub.tether.embedded
  version: v1
  metadata:
    - {{name: path, value: "{path}"}}
    - {{name: publishingScopes, value: "{app}=orders,other,a/b,bulk,raw"}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: {memory}}}
spec: {{type: pubsub.in-memory, version: v1}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: down}}
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - {{name: redisHost, value: "127.0.0.1:{dead_port}"}}
"""

Middleware = Callable[[web.Request, Callable[[web.Request], Awaitable[web.StreamResponse]]],
                      Awaitable[web.StreamResponse]]


class Sidecar:
    """The sidecar's HTTP API on its own event loop in a thread."""

    def __init__(self, tmp_path: Path, middlewares: tuple[Middleware, ...] = ()) -> None:
        self.memory = f"client-{uuid.uuid4().hex[:8]}"
        folder = tmp_path / "resources"
        folder.mkdir(exist_ok=True)
        (folder / "components.yaml").write_text(COMPONENTS.format(
            path=tmp_path / "broker.db", app=APP_ID, memory=self.memory, dead_port=free_port()
        ))
        self.folder = folder
        self.middlewares = middlewares
        self.shutdowns = 0
        self.peers: set[Any] = set()
        self.transports: list[asyncio.BaseTransport] = []
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.port = self.call(self._start())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def call(self, coro: Awaitable[T]) -> T:
        """Run ``coro`` on the sidecar's loop and wait for its result."""
        async def run() -> T:
            return await coro
        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(WAIT)

    async def _start(self) -> int:
        resources = load_resources(self.folder, APP_ID)
        components = resources.components_for(APP_ID)
        self.registry = PubSubRegistry(components)

        def on_shutdown() -> None:
            self.shutdowns += 1

        app = create_app(self.registry, app_id=APP_ID, components=components,
                         on_shutdown=on_shutdown)

        @web.middleware
        async def record_peer(request: web.Request, handler: Any) -> web.StreamResponse:
            transport = request.transport
            self.peers.add(transport.get_extra_info("peername") if transport else None)
            if transport is not None:
                self.transports.append(transport)
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(record_peer)
        app.middlewares.extend(self.middlewares)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        bound: int = self.runner.addresses[0][1]
        return bound

    def drop_connections(self) -> None:
        """Close every connection the server has kept alive, as an idle timeout does."""
        async def drop() -> None:
            for transport in self.transports:
                transport.close()
        self.call(drop())

    def stop(self) -> None:
        try:
            self.call(self.runner.cleanup())  # also closes the registry's brokers
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(WAIT)
            self.loop.close()
            _named_stores.pop(self.memory, None)

    def events(self, pubsub: str, topic: str, count: int) -> list[CloudEvent]:
        """The first ``count`` events of the topic (a new group reads from the start)."""
        async def read() -> list[CloudEvent]:
            broker = await self.registry.broker(pubsub)
            async with broker.subscribe(topic, f"check-{uuid.uuid4().hex}") as subscription:
                return [d.event for d in await take(subscription, count)]
        return self.call(read())

    def assert_empty(self, pubsub: str, topic: str) -> None:
        """Nothing was published: a marker published now is the topic's first event."""
        async def mark() -> None:
            broker = await self.registry.broker(pubsub)
            await broker.publish(topic, CloudEvent(type="marker", source="test"))
        self.call(mark())
        (first,) = self.events(pubsub, topic, 1)
        assert first.type == "marker"


def by_data(events: list[CloudEvent]) -> dict[str, CloudEvent]:
    """Events by ``repr`` of their data: keyless events are spread over partitions, so
    they arrive in no set order."""
    keyed = {repr(e.data): e for e in events}
    assert len(keyed) == len(events)
    return keyed


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[Sidecar]:
    running = Sidecar(tmp_path)
    yield running
    running.stop()


@pytest.fixture
def client(sidecar: Sidecar) -> Iterator[tether.Client]:
    with tether.Client(sidecar.url) as c:
        yield c


# --- publish ------------------------------------------------------------------------------------


def test_json_text_and_bytes_get_their_content_types(
    sidecar: Sidecar, client: tether.Client
) -> None:
    before = datetime.now(UTC).replace(microsecond=0)
    binary = bytes(range(256))
    client.publish("pubsub", "orders", {"orderId": 7, "items": [1, 2]})
    client.publish("pubsub", "orders", "hello")
    client.publish("pubsub", "orders", binary)
    client.publish("pubsub", "orders", [1, "two"])
    got = by_data(sidecar.events("pubsub", "orders", 4))
    first, second = got[repr({"orderId": 7, "items": [1, 2]})], got[repr("hello")]
    third, fourth = got[repr(binary)], got[repr([1, "two"])]
    assert (first.data, first.datacontenttype) == ({"orderId": 7, "items": [1, 2]},
                                                   "application/json")
    assert (second.data, second.datacontenttype) == ("hello", "text/plain")
    assert (third.data, third.datacontenttype) == (binary, "application/octet-stream")
    assert (fourth.data, fourth.datacontenttype) == ([1, "two"], "application/json")
    # the sidecar's envelope, as for any Dapr publish
    assert (first.source, first.type) == (APP_ID, "com.dapr.event.sent")
    assert first.extensions["topic"] == "orders"
    assert first.extensions["pubsubname"] == "pubsub"
    assert first.time is not None and first.time >= before
    uuid.UUID(first.id)


def test_a_cloudevent_is_published_as_the_callers_own(
    sidecar: Sidecar, client: tether.Client
) -> None:
    mine = CloudEvent(id="inv-1", type="invoice.paid", source="/billing", subject="inv",
                      data={"amount": 3}, extensions={"tenant": "acme"})
    client.publish("pubsub", "orders", mine)
    (event,) = sidecar.events("pubsub", "orders", 1)
    assert (event.id, event.type, event.source, event.subject, event.data) == (
        "inv-1", "invoice.paid", "/billing", "inv", {"amount": 3}
    )
    assert event.extensions["tenant"] == "acme"
    assert event.extensions["topic"] == "orders"  # what the caller left out is filled


def test_publish_options_reach_the_event(sidecar: Sidecar, client: tether.Client) -> None:
    before = datetime.now(UTC)
    client.publish(
        "pubsub", "orders", {"n": 1},
        partition_key="customer-9",
        ttl_seconds=120,
        metadata={"cloudevent.type": "order.placed", "cloudevent.subject": "o-1"},
        content_type="application/vnd.order+json",
    )
    (event,) = sidecar.events("pubsub", "orders", 1)
    assert event.partitionkey == "customer-9"
    assert (event.type, event.subject) == ("order.placed", "o-1")
    assert (event.data, event.datacontenttype) == ({"n": 1}, "application/vnd.order+json")
    expires = parse_time(event.extensions["expiration"])
    assert (expires - before).total_seconds() >= 119


def test_a_delayed_publish_is_held_on_the_schedule_topic(
    sidecar: Sidecar, client: tether.Client
) -> None:
    # the in-process sidecar runs no scheduler, so the records stay where publish put them
    before = datetime.now(UTC)
    due_at = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    client.publish("pubsub", "orders", {"n": 1}, deliver_after=timedelta(hours=1),
                   partition_key="k1")
    client.publish("pubsub", "orders", {"n": 2}, deliver_at=due_at)
    client.publish("pubsub", "orders", {"n": 3}, deliver_after=90)
    got = by_data(sidecar.events("pubsub", "tether.scheduled", 3))
    one, two, three = got[repr({"n": 1})], got[repr({"n": 2})], got[repr({"n": 3})]
    assert {e.extensions["tethertopic"] for e in got.values()} == {"orders"}
    assert one.extensions["tetherkey"] == "k1"
    assert 3599 <= (parse_time(one.extensions["tetherdue"]) - before).total_seconds()
    assert parse_time(two.extensions["tetherdue"]) == due_at
    assert 89 <= (parse_time(three.extensions["tetherdue"]) - before).total_seconds()
    sidecar.assert_empty("pubsub", "orders")  # not delivered early
    # the sidecar checks the values: the client's errors are curl's
    for kwargs in ({"deliver_after": -5}, {"deliver_at": datetime(2030, 1, 1)},
                   {"deliver_after": 1, "deliver_at": due_at}):
        with pytest.raises(TetherApiError) as caught:
            client.publish("pubsub", "other", "x", **kwargs)
        assert (caught.value.status, caught.value.error_code) == (
            400, "ERR_PUBSUB_REQUEST_METADATA"
        )
    sidecar.assert_empty("pubsub", "other")


def test_raw_payload_is_published_unwrapped(sidecar: Sidecar, client: tether.Client) -> None:
    client.publish("pubsub", "raw", b'{"not": "wrapped"}', raw_payload=True, partition_key="k")
    (event,) = sidecar.events("pubsub", "raw", 1)
    assert event.data == b'{"not": "wrapped"}'
    assert event.partitionkey == "k"
    assert "topic" not in event.extensions


def test_names_are_quoted_and_a_topic_may_hold_slashes(
    sidecar: Sidecar, client: tether.Client
) -> None:
    client.publish("pubsub", "a/b", "x")
    client.publish(sidecar.memory, "with space?&#", "y")
    (event,) = sidecar.events("pubsub", "a/b", 1)
    assert (event.data, event.extensions["topic"]) == ("x", "a/b")
    (event,) = sidecar.events(sidecar.memory, "with space?&#", 1)
    assert (event.data, event.extensions["topic"]) == ("y", "with space?&#")


def test_data_that_is_not_json_is_refused_before_sending(client: tether.Client) -> None:
    with pytest.raises(TypeError, match="JSON"):
        client.publish("pubsub", "orders", {"when": datetime.now(UTC)})
    with pytest.raises(ValueError, match="cloudevents"):
        client.publish("pubsub", "orders", CloudEvent(type="t", source="s"),
                       content_type="application/json")


# --- bulk ---------------------------------------------------------------------------------------


def test_bulk_publish_encodes_every_kind_of_entry(
    sidecar: Sidecar, client: tether.Client
) -> None:
    binary = b"\x00\xff\xfe"
    failed = client.publish_bulk("pubsub", "bulk", [
        {"n": 1},
        "two",
        binary,
        CloudEvent(id="ce-4", type="t4", source="/s", data={"n": 4}),
        PublishEntry('{"n": 5}', entry_id="five", content_type="application/json",
                     metadata={"partitionKey": "p5"}),
    ], metadata={"cloudevent.subject": "batch-1"})
    assert failed == []
    got = by_data(sidecar.events("pubsub", "bulk", 5))
    one = got[repr({"n": 1})]
    assert (one.datacontenttype, one.source, one.subject) == ("application/json", APP_ID,
                                                              "batch-1")
    assert got[repr("two")].datacontenttype == "text/plain"
    three = got[repr(binary)]
    assert three.datacontenttype == "application/octet-stream"
    assert three.extensions["topic"] == "bulk"
    four = got[repr({"n": 4})]
    assert (four.id, four.type, four.source) == ("ce-4", "t4", "/s")
    five = got[repr({"n": 5})]
    assert five.partitionkey == "p5"


def test_bulk_publish_returns_the_failed_entries(client: tether.Client) -> None:
    # the "down" component is a Redis on a port nothing listens on: the broker fails
    entries = [PublishEntry({"n": 1}, entry_id="a"), PublishEntry("b", entry_id="b")]
    failed = client.publish_bulk("down", "orders", entries)
    assert [f.entry_id for f in failed] == ["a", "b"]
    assert all(isinstance(f, FailedEntry) and f.error for f in failed)
    assert {f.error_code for f in failed} == {"ERR_PUBSUB_PUBLISH_MESSAGE"}
    assert [f.entry for f in failed] == entries


def test_bulk_errors_of_the_whole_request_raise(
    sidecar: Sidecar, client: tether.Client
) -> None:
    with pytest.raises(TetherApiError) as caught:
        client.publish_bulk("nope", "bulk", [{"n": 1}])
    assert (caught.value.status, caught.value.error_code) == (404, "ERR_PUBSUB_NOT_FOUND")
    bad = PublishEntry({"specversion": "9"}, content_type="application/cloudevents+json")
    with pytest.raises(TetherApiError) as caught:
        client.publish_bulk("pubsub", "bulk", [{"n": 1}, bad])
    assert (caught.value.status, caught.value.error_code) == (400, "ERR_PUBSUB_CLOUD_EVENTS_SER")
    with pytest.raises(ValueError, match="twice"):
        client.publish_bulk("pubsub", "bulk", [PublishEntry(1, entry_id="x"),
                                               PublishEntry(2, entry_id="x")])
    sidecar.assert_empty("pubsub", "bulk")


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "status", "code"),
    [
        ({"pubsub": "nope", "topic": "orders"}, 404, "ERR_PUBSUB_NOT_FOUND"),
        ({"pubsub": "pubsub", "topic": "orders", "ttl_seconds": -1}, 400,
         "ERR_PUBSUB_REQUEST_METADATA"),
        ({"pubsub": "pubsub", "topic": "orders", "metadata": {"ttlInSeconds": "soon"}}, 400,
         "ERR_PUBSUB_REQUEST_METADATA"),
        ({"pubsub": "pubsub", "topic": "payments"}, 403, "ERR_PUBSUB_FORBIDDEN"),
        ({"pubsub": "down", "topic": "orders"}, 500, "ERR_PUBSUB_PUBLISH_MESSAGE"),
    ],
)
def test_errors_carry_daprs_status_code_and_message(
    sidecar: Sidecar, client: tether.Client, kwargs: dict[str, Any], status: int, code: str
) -> None:
    with pytest.raises(TetherApiError) as caught:
        client.publish(data="x", **kwargs)
    error = caught.value
    assert (error.status, error.error_code) == (status, code)
    assert error.message and error.body == {"errorCode": code, "message": error.message}
    assert code in str(error)
    if kwargs["pubsub"] == "pubsub":
        sidecar.assert_empty("pubsub", kwargs["topic"])


def test_an_unreachable_sidecar(tmp_path: Path) -> None:
    with tether.Client(f"http://127.0.0.1:{free_port()}") as client:
        assert client.healthz() is False
        with pytest.raises(SidecarUnavailableError):
            client.publish("pubsub", "orders", "x")
        with pytest.raises(TimeoutError, match="not ready"):
            client.wait_for_sidecar(timeout=0.3)


# --- health, metadata, shutdown -----------------------------------------------------------------


def test_health_metadata_and_shutdown(sidecar: Sidecar, client: tether.Client) -> None:
    assert client.healthz() is True
    assert client.healthz(outbound=True) is True
    client.wait_for_sidecar(timeout=WAIT)
    client.set_metadata("owner", "team a/b")
    meta = client.metadata()
    assert meta["id"] == APP_ID
    assert [c["name"] for c in meta["components"]] == ["pubsub", sidecar.memory, "down"]
    assert meta["extended"] == {"owner": "team a/b"}
    assert sidecar.shutdowns == 0
    client.shutdown()
    assert sidecar.shutdowns == 1


def test_one_kept_alive_connection_that_the_server_may_close(
    sidecar: Sidecar, client: tether.Client
) -> None:
    for n in range(5):
        client.publish("pubsub", "orders", {"n": n})
    assert client.healthz()
    assert len(sidecar.peers) == 1  # every call went over the same connection
    sidecar.drop_connections()
    client.publish("pubsub", "orders", {"n": 5})
    assert len(sidecar.peers) == 2
    assert sorted(by_data(sidecar.events("pubsub", "orders", 6))) == sorted(
        repr({"n": n}) for n in range(6)
    )


def test_a_client_is_safe_to_share_between_threads(
    sidecar: Sidecar, client: tether.Client
) -> None:
    def send(worker: int) -> None:
        for n in range(10):
            client.publish(sidecar.memory, "shared", {"w": worker, "n": n})

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT)
    got = sidecar.events(sidecar.memory, "shared", 40)
    assert sorted((e.data["w"], e.data["n"]) for e in got) == [
        (w, n) for w in range(4) for n in range(10)
    ]


# --- address and token --------------------------------------------------------------------------


def test_the_address_comes_from_daprs_environment(
    sidecar: Sidecar, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("DAPR_HTTP_ENDPOINT", "DAPR_HTTP_PORT", "TETHER_HTTP_PORT", "DAPR_API_TOKEN",
                 "DAPR_RUNTIME_HOST"):
        monkeypatch.delenv(name, raising=False)
    assert tether.Client().address == "http://127.0.0.1:3500"
    monkeypatch.setenv("DAPR_HTTP_PORT", str(sidecar.port))
    with tether.Client() as client:
        assert client.metadata()["id"] == APP_ID
    monkeypatch.setenv("DAPR_HTTP_PORT", "1")
    monkeypatch.setenv("TETHER_HTTP_PORT", str(sidecar.port))
    with tether.Client() as client:
        assert client.healthz()
    monkeypatch.setenv("TETHER_HTTP_PORT", "1")
    monkeypatch.setenv("DAPR_HTTP_ENDPOINT", sidecar.url)
    with tether.Client() as client:
        assert client.healthz()
    # an argument wins over the environment
    assert tether.Client("localhost:4000").address == "http://localhost:4000"
    assert resolve_settings("https://sidecar.example/prefix/").base_url == (
        "https://sidecar.example:443/prefix"
    )
    with pytest.raises(ValueError, match="http"):
        tether.Client("ftp://x")


def test_the_api_token_is_sent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the sidecar's own check, as create_app(api_token=...) installs it
    sidecar = Sidecar(tmp_path, middlewares=(api_token_check("s3cret"),))
    try:
        monkeypatch.setenv("DAPR_API_TOKEN", "s3cret")
        with tether.Client(sidecar.url) as client:
            client.publish("pubsub", "orders", {"n": 1})
        with tether.Client(sidecar.url, api_token="wrong") as client:
            with pytest.raises(TetherApiError) as caught:
                client.publish("pubsub", "other", {"n": 2})
            assert (caught.value.status, caught.value.error_code) == (401, "ERR_API_TOKEN_INVALID")

        async def async_publish() -> None:
            async with tether.AsyncClient(sidecar.url) as client:  # the token from the env
                await client.publish("pubsub", "orders", {"n": 3})
            async with tether.AsyncClient(sidecar.url, api_token="wrong") as client:
                with pytest.raises(TetherApiError) as caught:
                    await client.publish("pubsub", "other", {"n": 4})
                assert caught.value.status == 401

        asyncio.run(async_publish())
        got = by_data(sidecar.events("pubsub", "orders", 2))
        assert sorted(got) == sorted([repr({"n": 1}), repr({"n": 3})])
        sidecar.assert_empty("pubsub", "other")
    finally:
        sidecar.stop()


# --- the async client ---------------------------------------------------------------------------


async def test_async_client_publishes_and_maps_errors(sidecar: Sidecar) -> None:
    async with tether.AsyncClient(sidecar.url) as client:
        await client.wait_for_sidecar(timeout=WAIT)
        assert await client.healthz()
        await client.publish("pubsub", "orders", {"n": 1}, partition_key="k1")
        await client.publish("pubsub", "orders", "two", metadata={"cloudevent.type": "t2"})
        await client.publish("pubsub", "orders", CloudEvent(id="c3", type="t3", source="/s",
                                                            data=b"\x00"))
        assert await client.publish_bulk("pubsub", "orders", [{"n": 4}, b"\xff"]) == []
        failed = await client.publish_bulk("down", "orders", ["x"])
        assert [(f.entry_id, f.error_code) for f in failed] == [
            ("0", "ERR_PUBSUB_PUBLISH_MESSAGE")
        ]
        with pytest.raises(TetherApiError) as caught:
            await client.publish("nope", "orders", "x")
        assert (caught.value.status, caught.value.error_code) == (404, "ERR_PUBSUB_NOT_FOUND")
        with pytest.raises(TetherApiError) as caught:
            await client.publish("pubsub", "orders", "x", ttl_seconds=-5)
        assert (caught.value.status, caught.value.error_code) == (
            400, "ERR_PUBSUB_REQUEST_METADATA"
        )
        await client.set_metadata("k", "v")
        assert (await client.metadata())["extended"] == {"k": "v"}
        await client.shutdown()
    assert sidecar.shutdowns == 1
    got = by_data(await asyncio.to_thread(sidecar.events, "pubsub", "orders", 5))
    assert got[repr({"n": 1})].partitionkey == "k1"
    second = got[repr("two")]
    assert (second.type, second.datacontenttype) == ("t2", "text/plain")
    third = got[repr(b"\x00")]
    assert (third.id, third.type) == ("c3", "t3")
    assert got[repr(b"\xff")].datacontenttype == "application/octet-stream"
    assert got[repr({"n": 4})].datacontenttype == "application/json"


async def test_async_client_on_an_unreachable_sidecar() -> None:
    async with tether.AsyncClient(f"127.0.0.1:{free_port()}") as client:
        assert await client.healthz() is False
        with pytest.raises(SidecarUnavailableError):
            await client.publish("pubsub", "orders", "x")
        with pytest.raises(TimeoutError):
            await client.wait_for_sidecar(timeout=0.3)


# --- a real `tether run` ------------------------------------------------------------------------

# the app: finds its sidecar from the environment tether run gives it, publishes, reports
CLIENT_APP = """
import json, tether
with tether.Client() as client:
    client.wait_for_sidecar(60)
    app_id = client.metadata()["id"]
    client.publish("pubsub", "orders", {"n": 1}, partition_key="k1")
    client.publish("pubsub", "orders", "two", ttl_seconds=3600)
    failed = client.publish_bulk("pubsub", "orders", [{"n": 3}, b"\\x00\\xff"])
    try:
        client.publish("nope", "orders", "x")
    except tether.TetherApiError as exc:
        error = [exc.status, exc.error_code]
print(json.dumps({"app_id": app_id, "failed": len(failed), "error": error}))
"""


async def test_under_tether_run(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "tether.cli.main", "run", "--app-id", "shop",
         "--http-port", str(free_port()), "--", sys.executable, "-c", CLIENT_APP],
        cwd=tmp_path, capture_output=True, text=True, timeout=WAIT * 2,
    )
    assert proc.returncode == 0, proc.stderr
    # the app's last line (tether run's own "Exited ... successfully" lines follow it)
    app_lines = [line for line in proc.stdout.splitlines() if line.startswith("== APP")]
    report = json.loads(app_lines[-1].split("== ", 2)[-1])
    assert report == {"app_id": "shop", "failed": 0, "error": [404, "ERR_PUBSUB_NOT_FOUND"]}
    # the embedded default of tether run: .tether/broker.db under its working directory
    async with open_broker(f"embedded://{tmp_path / '.tether' / 'broker.db'}") as broker:
        async with broker.subscribe("orders", "check") as subscription:
            got = by_data([d.event for d in await take(subscription, 4)])
    one, two = got[repr({"n": 1})], got[repr("two")]
    assert (one.partitionkey, one.source, one.type) == ("k1", "shop", "com.dapr.event.sent")
    assert two.datacontenttype == "text/plain"
    assert "expiration" in two.extensions
    assert got[repr({"n": 3})].extensions["pubsubname"] == "pubsub"
    assert got[repr(b"\x00\xff")].datacontenttype == "application/octet-stream"


@pytest.mark.parametrize("variable", [None, "DAPR_HTTP_PORT"])
def test_an_unreachable_sidecar_says_where_the_address_came_from(
    monkeypatch: pytest.MonkeyPatch, variable: str | None
) -> None:
    for name in ("DAPR_HTTP_ENDPOINT", "TETHER_HTTP_PORT", "DAPR_HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    port = free_port()  # nothing listens there
    if variable is None:
        client = tether.Client(f"127.0.0.1:{port}")
        hint = "the address passed to the client"
    else:
        monkeypatch.setenv(variable, str(port))
        client = tether.Client()
        hint = "the port from DAPR_HTTP_PORT"
    with client, pytest.raises(tether.sdk.client.SidecarUnavailableError) as caught:
        client.get_state("statestore", "k")
    assert f"127.0.0.1:{port}" in str(caught.value) and hint in str(caught.value)
    assert caught.value.__cause__ is None  # one error, not a chain of socket internals


def test_the_default_address_says_how_to_point_the_client_elsewhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("DAPR_HTTP_ENDPOINT", "TETHER_HTTP_PORT", "DAPR_HTTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    settings = tether.Client().settings
    assert settings.source == "default" and settings.port == 3500
