"""tether.App end to end on real brokers (memory:// and embedded://): handlers, routing,
Retry/Drop, sync handlers, publish, drain on stop."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tether
from tether.brokers.memory import _named_stores
from tether.platform.events import CloudEvent
from tether.workers.delivery import DeliveryOptions
from tether.workers.retry import Backoff

WAIT = 20.0
FAST = DeliveryOptions(backoff=Backoff(initial=0.01, multiplier=2.0, maximum=0.05))


@pytest.fixture(params=["memory", "embedded"])
def broker_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        name = f"sdk-{uuid.uuid4().hex[:8]}"
        yield f"memory://{name}"
        _named_stores.pop(name, None)
    else:
        yield f"embedded://{tmp_path / 'broker.db'}?session_timeout=3&heartbeat_interval=0.3"


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT):
        while not condition():  # noqa: ASYNC110 - polls state no event signals
            await asyncio.sleep(0.01)


async def test_handlers_receive_published_events(broker_url: str) -> None:
    app = tether.App("orders", broker=broker_url, options=FAST)
    got: list[CloudEvent] = []

    @app.subscribe(topic="orders")
    async def on_order(event: CloudEvent) -> None:
        got.append(event)

    async with app.run():
        sent = [await app.publish("pubsub", "orders", {"n": n}) for n in range(5)]
        await until(lambda: len(got) == 5)
    assert sorted(e.id for e in got) == sorted(e.id for e in sent)
    first = next(e for e in got if e.id == sent[0].id)
    assert first.data == {"n": 0}
    assert first.source == "orders"
    assert first.type == "com.dapr.event.sent"
    assert first.datacontenttype == "application/json"
    assert first.extensions["topic"] == "orders"
    assert first.extensions["pubsubname"] == "pubsub"


async def test_match_rules_in_registration_order(broker_url: str) -> None:
    app = tether.App("orders", broker=broker_url, options=FAST)
    seen: dict[str, list[str]] = {"big": [], "any_kind": [], "default": []}

    @app.subscribe(topic="orders", match='has(event.data.size) && event.data.size == "big"')
    async def big(event: CloudEvent) -> None:
        seen["big"].append(event.data["id"])

    @app.subscribe(topic="orders", match="has(event.data.size)")
    async def any_kind(event: CloudEvent) -> None:
        seen["any_kind"].append(event.data["id"])

    @app.subscribe(topic="orders")
    async def default(event: CloudEvent) -> None:
        seen["default"].append(event.data["id"])

    assert len(app.subscriptions) == 1
    async with app.run():
        await app.publish("pubsub", "orders", {"id": "a", "size": "big"})
        await app.publish("pubsub", "orders", {"id": "b", "size": "small"})
        await app.publish("pubsub", "orders", {"id": "c"})
        await until(lambda: sum(map(len, seen.values())) == 3)
    assert seen == {"big": ["a"], "any_kind": ["b"], "default": ["c"]}


async def test_retry_and_errors_redeliver(broker_url: str) -> None:
    app = tether.App("orders", broker=broker_url, options=FAST)
    attempts: list[str] = []

    @app.subscribe(topic="orders")
    def flaky(event: CloudEvent) -> None:  # a sync handler, run in a thread
        attempts.append(threading.current_thread().name)
        if len(attempts) == 1:
            raise tether.Retry(delay=0.01)
        if len(attempts) == 2:
            raise RuntimeError("a bug, retried like an HTTP 500")

    async with app.run():
        await app.publish("pubsub", "orders", "hello")
        await until(lambda: len(attempts) == 3)
        await asyncio.sleep(0.2)  # room for a wrong extra redelivery to show up
    assert len(attempts) == 3
    assert threading.main_thread().name not in attempts


async def test_drop_goes_to_the_dead_letter_topic(broker_url: str) -> None:
    app = tether.App("orders", broker=broker_url, options=FAST)
    dead: list[CloudEvent] = []
    tries: list[str] = []

    @app.subscribe(topic="orders", dead_letter_topic="orders-dead")
    async def refuse(event: CloudEvent) -> None:
        tries.append(event.id)
        raise tether.Drop("malformed order")

    @app.subscribe(topic="orders-dead")
    async def on_dead(event: CloudEvent) -> None:
        dead.append(event)

    async with app.run():
        sent = await app.publish("pubsub", "orders", {"bad": True})
        await until(lambda: len(dead) == 1)
    assert dead[0].id == sent.id
    assert tries == [sent.id]  # dropped, never retried


async def test_stop_drains_handlers_in_flight(broker_url: str) -> None:
    app = tether.App("orders", broker=broker_url, options=FAST)
    started = asyncio.Event()
    finished: list[str] = []

    @app.subscribe(topic="orders")
    async def slow(event: CloudEvent) -> None:
        started.set()
        await asyncio.sleep(0.3)
        finished.append(event.id)

    await app.start()
    sent = await app.publish("pubsub", "orders", "x")
    await asyncio.wait_for(started.wait(), WAIT)
    await app.stop()
    assert finished == [sent.id]

    # it was acked: a second run of the same group gets nothing again
    again: list[str] = []
    app2 = tether.App("orders", broker=broker_url, options=FAST)
    app2.subscribe(topic="orders")(lambda event: again.append(event.id))
    async with app2.run():
        marker = await app2.publish("pubsub", "orders", "marker")
        await until(lambda: marker.id in again)
    assert again == [marker.id]


async def test_resources_path_components(tmp_path: Path) -> None:
    resources = tmp_path / "components"
    resources.mkdir()
    (resources / "pubsub.yaml").write_text(
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: events\n"
        "spec:\n  type: pubsub.tether.embedded\n  version: v1\n  metadata:\n"
        f"    - name: path\n      value: {tmp_path / 'events.db'}\n"
    )
    app = tether.App("billing", resources_path=resources, options=FAST)
    got: list[object] = []

    @app.subscribe(pubsub="events", topic="invoices")
    async def on_invoice(event: CloudEvent) -> None:
        got.append(event.data)

    async with app.run():
        await app.publish("events", "invoices", b"\x00\x01", partition_key="k1")
        await until(lambda: len(got) == 1)
        with pytest.raises(KeyError):
            await app.publish("nope", "invoices", "x")
    assert got == [b"\x00\x01"]


def test_registration_errors() -> None:
    app = tether.App("orders", broker="memory://unused")

    @app.subscribe(topic="orders")
    async def one(event: CloudEvent) -> None: ...

    with pytest.raises(ValueError, match="default handler"):
        app.subscribe(topic="orders")(one)
    with pytest.raises(ValueError, match="dead_letter_topic"):
        app.subscribe(topic="orders", match="true", dead_letter_topic="a")(one)
        app.subscribe(topic="orders", match="false", dead_letter_topic="b")(one)
    with pytest.raises(ValueError, match="not both"):
        tether.App("x", broker="memory://", resources_path="/tmp")


async def test_data_that_is_not_json_is_refused(tmp_path: Path) -> None:
    app = tether.App("orders", broker=f"embedded://{tmp_path / 'broker.db'}", options=FAST)
    with pytest.raises(TypeError):
        app.event("pubsub", "orders", {"when": object()})
    async with app.run():
        with pytest.raises(TypeError):
            await app.publish("pubsub", "orders", {"when": object()})
        event = await app.publish("pubsub", "orders", {"n": 1})
    assert event.datacontenttype == "application/json"


async def test_bad_ttl_is_refused_as_the_sidecar_refuses_it(tmp_path: Path) -> None:
    app = tether.App("orders", broker=f"embedded://{tmp_path / 'broker.db'}", options=FAST)
    for ttl in ("soon", "-5", "1.5"):
        with pytest.raises(ValueError, match=f"ttlInSeconds '{ttl}' is not a whole number"):
            app.event("pubsub", "orders", {"n": 1}, metadata={"ttlInSeconds": ttl})
    event = app.event("pubsub", "orders", {"n": 1},
                      metadata={"ttlInSeconds": "60", "partitionKey": "k"})
    assert event.extensions["expiration"] and event.partitionkey == "k"
    async with app.run():
        with pytest.raises(ValueError, match="ttlInSeconds"):
            await app.publish("pubsub", "orders", {"n": 1}, metadata={"ttlInSeconds": "x"})
