"""``SubscribeOptions.start_from``: where a NEW consumer group starts on a topic.

On every backend that keeps a topic's history (memory, embedded, Kafka on tansu, Redis):
``earliest`` (and the default) sees events published before the group existed, ``latest``
does not but sees everything after it joined, and a group that joined with ``latest`` is no
longer new: after a restart it resumes where it was, also on partitions it never acked on.
No timing assertions: "after it joined" is established by publishing markers until one
arrives.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path

import pytest

import tether
from tests.brokers.harness import Harness
from tests.brokers.helpers import WAIT, event, take
from tether.brokers import (
    Broker,
    BrokerConfigError,
    Delivery,
    SubscribeOptions,
    Subscription,
    open_broker,
)
from tether.platform.components import Component
from tether.platform.events import CloudEvent
from tether.platform.pubsub import broker_spec

#: backends with a history a new group could start from (Service Bus has none)
LOG_BACKENDS = ("memory", "embedded", "kafka", "redis")
#: keys spread over all partitions of a 4-partition topic
KEYS = [f"k{i}" for i in range(16)]
#: how long one marker is waited for before another is published (not an assertion)
MARKER_POLL = 1.0


@pytest.fixture(params=LOG_BACKENDS)
def log_harness(request: pytest.FixtureRequest) -> Harness:
    value: Harness = request.getfixturevalue(f"{request.param}_harness")
    return value


async def until_marker(broker: Broker, topic: str, subscription: Subscription) -> list[Delivery]:
    """Publish markers until one is delivered; every delivery seen on the way (acked)."""
    seen: list[Delivery] = []
    markers: set[str] = set()

    async def run() -> None:
        for n in itertools.count():
            marker = event(10_000 + n, key="marker", source="/marker")
            markers.add(marker.id)
            await broker.publish(topic, marker)
            while True:
                try:
                    delivery = await asyncio.wait_for(subscription.__anext__(), MARKER_POLL)
                except TimeoutError:
                    break  # the group may not be positioned yet: publish another marker
                await delivery.ack()
                seen.append(delivery)
                if delivery.event.id in markers:
                    return

    await asyncio.wait_for(run(), WAIT)
    return seen


async def publish_one_by_one(broker: Broker, topic: str, events: list[CloudEvent]) -> None:
    """Events a ``latest`` group must not see, each in a batch of its own: tansu (the test
    Kafka) answers ListOffsets LATEST with the base offset of the last batch + 1, so a group
    would start inside a multi-record batch (real Kafka answers the end of the log)."""
    for e in events:
        await broker.publish(topic, e)


def before_ids(deliveries: list[Delivery]) -> set[str]:
    return {d.event.id for d in deliveries if d.event.source != "/marker"}


def test_start_from_must_be_known() -> None:
    with pytest.raises(BrokerConfigError, match="start_from"):
        SubscribeOptions(start_from="middle")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("metadata", "start_from"),
    [({"initialOffset": "oldest"}, "earliest"), ({"initialOffset": "Newest"}, "latest"),
     ({}, None)],
)
def test_kafka_component_initial_offset_becomes_start_from(
    metadata: dict[str, str], start_from: str | None
) -> None:
    component = Component(
        name="pubsub", type="pubsub.kafka", metadata={"brokers": "h:9092", **metadata}
    )
    assert broker_spec(component).start_from == start_from


@pytest.mark.parametrize("start_from", ["earliest", None])
async def test_new_group_from_earliest_sees_earlier_events(
    log_harness: Harness, start_from: str | None
) -> None:
    topic, group = log_harness.topic(), log_harness.group()
    before = [event(i, key=KEYS[i]) for i in range(len(KEYS))]
    options = SubscribeOptions(start_from=start_from)  # type: ignore[arg-type]
    async with log_harness.broker() as broker:
        await broker.publish_batch(topic, before)
        async with broker.subscribe(topic, group, options) as subscription:
            received = await take(subscription, len(before))
    assert {d.event.id for d in received} == {e.id for e in before}


async def test_new_group_from_latest_skips_earlier_events(log_harness: Harness) -> None:
    topic, group = log_harness.topic(), log_harness.group()
    before = [event(i, key=KEYS[i]) for i in range(len(KEYS))]
    after = [event(100 + i, key=KEYS[i]) for i in range(len(KEYS))]
    async with log_harness.broker() as broker:
        await publish_one_by_one(broker, topic, before)
        options = SubscribeOptions(start_from="latest")
        async with broker.subscribe(topic, group, options) as subscription:
            seen = await until_marker(broker, topic, subscription)
            # positioned now: everything published from here on arrives, on every partition
            await broker.publish_batch(topic, after)
            received = await take(subscription, len(after))
        assert before_ids(seen) == set()
        assert {d.event.id for d in received} == {e.id for e in after}

        # an existing group keeps its position, whatever start_from says
        async with broker.subscribe(topic, group, SubscribeOptions()) as subscription:
            await broker.publish(topic, event(999, key="k0"))
            again = await until_marker(broker, topic, subscription)
        assert {e.id for e in before} & before_ids(again) == set()


async def test_group_that_joined_at_latest_resumes_after_restart(log_harness: Harness) -> None:
    """The position a ``latest`` group took counts as its position: events published while
    it is down are delivered when it is back, on partitions it never acked anything on."""
    topic, group = log_harness.topic(), log_harness.group()
    options = SubscribeOptions(start_from="latest")
    while_down = [event(200 + i, key=KEYS[i]) for i in range(len(KEYS))]
    async with log_harness.broker() as broker:
        await publish_one_by_one(broker, topic, [event(i, key=KEYS[i]) for i in range(len(KEYS))])
        async with broker.subscribe(topic, group, options) as subscription:
            await until_marker(broker, topic, subscription)
    async with log_harness.broker() as broker:
        await broker.publish_batch(topic, while_down)
        async with broker.subscribe(topic, group, options) as subscription:
            received = await take(subscription, len(while_down))
    assert {d.event.id for d in received} == {e.id for e in while_down}


KAFKA_COMPONENT = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.kafka
  version: v1
  metadata:
    - name: brokers
      value: "{address}"
    - name: initialOffset
      value: {offset}
"""


@pytest.mark.parametrize("offset", ["oldest", "newest"])
async def test_app_starts_a_new_group_where_the_components_initial_offset_says(
    kafka_address: str, tmp_path: Path, offset: str
) -> None:
    """End to end: the component's initialOffset reaches the App's delivery workers."""
    (tmp_path / "pubsub.yaml").write_text(
        KAFKA_COMPONENT.format(address=kafka_address, offset=offset)
    )
    topic = f"offset-{uuid.uuid4().hex[:10]}"
    before = [event(i, key=KEYS[i]) for i in range(len(KEYS))]
    async with open_broker(f"kafka://{kafka_address}") as publisher:
        await publish_one_by_one(publisher, topic, before)

    app = tether.App(f"app-{uuid.uuid4().hex[:8]}", resources_path=tmp_path, scheduler=False)
    got: list[CloudEvent] = []

    @app.subscribe(pubsub="pubsub", topic=topic)
    async def handle(e: CloudEvent) -> None:
        got.append(e)

    def seen(ids: set[str]) -> bool:
        return bool(ids & {e.id for e in got})

    async with app.run():
        async with asyncio.timeout(WAIT):
            markers: set[str] = set()
            while not seen(markers):  # until the group is positioned and delivering
                markers.add((await app.publish("pubsub", topic, {"marker": True})).id)
                for _ in range(int(MARKER_POLL / 0.05)):
                    if seen(markers):
                        break
                    await asyncio.sleep(0.05)
            if offset == "oldest":
                while not {e.id for e in before} <= {e.id for e in got}:  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
    if offset == "newest":
        assert not seen({e.id for e in before})
