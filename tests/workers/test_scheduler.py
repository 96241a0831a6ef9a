"""Delayed publish through the scheduler on every backend (tests/brokers harnesses): an event
is never delivered before it is due, is delivered, and is the publisher's event unchanged.
Service Bus (its fake) schedules natively, without a scheduler."""

from __future__ import annotations

import asyncio
import dataclasses
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from tests.brokers import conftest as brokers_conftest
from tests.brokers.harness import Harness
from tests.brokers.helpers import WAIT, nothing_more
from tether.brokers import Broker, SubscribeOptions, dead_letter_topic_for
from tether.brokers.memory import MemoryBroker
from tether.platform.events import CloudEvent
from tether.platform.pubsub.scheduled import (
    SCHEDULE_TOPIC,
    publish_at,
    schedules_natively,
    unwrap,
    wrap,
)
from tether.workers.scheduler import Scheduler, SchedulerOptions

# the broker suite's per-backend fixtures (memory, embedded, kafka, redis, servicebus)
harness = brokers_conftest.harness
for _name in ("memory", "embedded", "kafka", "redis", "servicebus"):
    globals()[f"{_name}_harness"] = getattr(brokers_conftest, f"{_name}_harness")


def event(i: int, key: str | None = None) -> CloudEvent:
    extensions = {"partitionkey": key} if key is not None else {}
    return CloudEvent(type="test.delayed", source="/sched", subject=f"s{i}", data={"i": i},
                      extensions={**extensions, "tenant": "acme"})


@pytest.fixture
async def broker(harness: Harness) -> AsyncIterator[Broker]:
    async with harness.broker() as opened:
        yield opened


@pytest.fixture
def isolated(harness: Harness) -> SchedulerOptions:
    """A schedule topic and group of this test's own: on a server shared by the session
    (Kafka), other tests' held records and group members must not reach this one."""
    return SchedulerOptions(topic=harness.topic("sched"), group=harness.group("sched"))


@pytest.fixture
async def scheduler(broker: Broker, isolated: SchedulerOptions) -> AsyncIterator[Scheduler | None]:
    if schedules_natively(broker):
        yield None  # Service Bus holds scheduled messages itself
        return
    running = Scheduler(broker, isolated)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def receive(broker: Broker, topic: str, group: str, count: int
                  ) -> list[tuple[CloudEvent, datetime]]:
    """The next ``count`` events of ``topic`` with the wall-clock time each arrived."""
    got: list[tuple[CloudEvent, datetime]] = []

    async def run() -> None:
        async with broker.subscribe(topic, group) as subscription:
            async for delivery in subscription:
                got.append((delivery.event, datetime.now(UTC)))
                await delivery.ack()
                if len(got) >= count:
                    await nothing_more(subscription, 1.0)
                    return

    await asyncio.wait_for(run(), WAIT + 30)
    return got


def test_wrap_and_unwrap_give_the_event_back() -> None:
    original = event(1, key="order-7")
    due = datetime.now(UTC) + timedelta(seconds=5)
    record = wrap(original, "orders", due)
    assert record.partitionkey not in (None, "order-7")
    assert record.id == original.id
    scheduled = unwrap(record)
    assert scheduled.event == original
    assert scheduled.topic == "orders"
    assert abs((scheduled.due - due).total_seconds()) < 1e-3
    keyless = event(2)
    assert unwrap(wrap(keyless, "orders", due)).event == keyless


async def test_delayed_event_arrives_no_earlier_than_due(
    harness: Harness, broker: Broker, scheduler: Scheduler | None, isolated: SchedulerOptions
) -> None:
    topic, group = harness.topic(), harness.group()
    await broker.create_topic(topic)
    sent = event(1, key="k1")
    due = datetime.now(UTC) + timedelta(seconds=1.5)
    await publish_at(broker, topic, [sent], [due], schedule_topic=isolated.topic)
    [(got, arrived)] = await receive(broker, topic, group, 1)
    assert arrived >= due, f"delivered {(due - arrived).total_seconds():.3f}s early"
    assert got == sent  # same id, attributes, data; the schedule extensions are gone


async def test_many_delays_each_delivered_once_and_not_early(
    harness: Harness, broker: Broker, scheduler: Scheduler | None, isolated: SchedulerOptions
) -> None:
    topic, group = harness.topic(), harness.group()
    await broker.create_topic(topic)
    now = datetime.now(UTC)
    rng = random.Random(7)
    sent = [event(i, key=f"k{i % 3}" if i % 2 else None) for i in range(40)]
    # due times spread over 3 s, some in the past (published at once), in shuffled order
    due: list[datetime | None] = [now + timedelta(seconds=rng.uniform(-1, 3)) for _ in sent]
    due[0] = None
    await publish_at(broker, topic, sent, due, schedule_topic=isolated.topic)
    got = await receive(broker, topic, group, len(sent))
    by_id = {e.id: (e, arrived) for e, arrived in got}
    assert len(got) == len(sent) == len(by_id), "an event was delivered twice or lost"
    for original, when in zip(sent, due, strict=True):
        delivered, arrived = by_id[original.id]
        assert delivered == original
        if when is not None:
            assert arrived >= when


async def test_held_events_do_not_gate_each_other(
    harness: Harness, broker: Broker, scheduler: Scheduler | None, isolated: SchedulerOptions
) -> None:
    """A far-future event with a key does not hold back a near one with the same key."""
    topic, group = harness.topic(), harness.group()
    await broker.create_topic(topic)
    now = datetime.now(UTC)
    far, near = event(1, key="same"), event(2, key="same")
    await publish_at(broker, topic, [far], [now + timedelta(hours=1)],
                     schedule_topic=isolated.topic)
    await publish_at(broker, topic, [near], [now + timedelta(seconds=0.5)],
                     schedule_topic=isolated.topic)
    [(got, _)] = await receive(broker, topic, group, 1)
    assert got == near


async def test_defer_is_not_a_delivery_attempt() -> None:
    async with MemoryBroker() as broker:
        await broker.publish("t", event(1))
        options = SubscribeOptions(max_deliveries=1)
        async with broker.subscribe("t", "g", options) as subscription:
            deliveries = []
            async for delivery in subscription:
                deliveries.append(delivery)
                if len(deliveries) < 3:
                    await delivery.defer(0.05)
                    continue
                break
            assert [d.delivery_count for d in deliveries] == [1, 1, 1]
            await deliveries[-1].ack()
        # never dead-lettered although max_deliveries is 1
        async with broker.subscribe(dead_letter_topic_for("t"), "dl") as dead:
            await nothing_more(dead, 0.3)


async def test_a_record_without_schedule_extensions_is_dead_lettered() -> None:
    async with MemoryBroker() as broker:
        scheduler = Scheduler(broker)
        await scheduler.start()
        try:
            await broker.publish(SCHEDULE_TOPIC, event(1))
            async with broker.subscribe(dead_letter_topic_for(SCHEDULE_TOPIC), "dl") as dead:
                async for delivery in dead:
                    assert delivery.event.subject == "s1"
                    assert "tetherdue" in delivery.event.extensions["deadletterreason"]
                    await delivery.ack()
                    break
        finally:
            await scheduler.stop()


async def test_a_stopped_scheduler_hands_held_events_to_the_next(
    harness: Harness, broker: Broker, isolated: SchedulerOptions
) -> None:
    if schedules_natively(broker):
        pytest.skip("Service Bus schedules natively: no scheduler holds anything")
    topic, group = harness.topic(), harness.group()
    await broker.create_topic(topic)
    first = Scheduler(broker, isolated)
    await first.start()
    sent = [event(i, key=f"k{i}") for i in range(5)]
    due = datetime.now(UTC) + timedelta(seconds=4)
    await publish_at(broker, topic, sent, [due] * len(sent), schedule_topic=isolated.topic)
    async with asyncio.timeout(WAIT):
        while first.held < len(sent):  # noqa: ASYNC110 - polls a counter
            await asyncio.sleep(0.02)
    await asyncio.wait_for(first.stop(), WAIT)
    assert first.forwarded == 0
    second = Scheduler(broker, isolated)
    await second.start()
    try:
        got = await receive(broker, topic, group, len(sent))
    finally:
        await second.stop()
    assert sorted(e.id for e, _ in got) == sorted(e.id for e in sent)
    assert all(arrived >= due for _, arrived in got)


async def test_beyond_max_held_the_rest_waits_in_the_broker(
    harness: Harness, broker: Broker, isolated: SchedulerOptions
) -> None:
    """Backpressure, not loss: a scheduler that may hold 3 still forwards all 12."""
    if schedules_natively(broker):
        pytest.skip("Service Bus schedules natively: no scheduler holds anything")
    topic, group = harness.topic(), harness.group()
    await broker.create_topic(topic)
    scheduler = Scheduler(broker, dataclasses.replace(isolated, max_held=3))
    await scheduler.start()
    try:
        now = datetime.now(UTC)
        sent = [event(i) for i in range(12)]
        due = [now + timedelta(seconds=0.5 + (i % 4) * 0.25) for i in range(12)]
        await publish_at(broker, topic, sent, due, schedule_topic=isolated.topic)
        got = await receive(broker, topic, group, len(sent))
    finally:
        await scheduler.stop()
    arrived = {e.id: at for e, at in got}
    assert sorted(arrived) == sorted(e.id for e in sent)
    assert all(arrived[e.id] >= when for e, when in zip(sent, due, strict=True))


async def test_schedulers_retry_a_broker_that_is_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from tether.brokers import BrokerUnavailableError
    from tether.workers import scheduler as scheduler_module

    monkeypatch.setattr(scheduler_module, "OPEN_RETRY", 0.01)
    attempts: list[str] = []
    async with MemoryBroker() as broker:

        async def open_broker(name: str) -> Broker:
            attempts.append(name)
            if len(attempts) < 3:
                raise BrokerUnavailableError("connection refused")
            return broker

        schedulers = scheduler_module.Schedulers(["pubsub"], open_broker)
        schedulers.start()  # returns at once: a down broker does not hold the sidecar up
        try:
            async with asyncio.timeout(WAIT):
                while "pubsub" not in schedulers.running:  # noqa: ASYNC110 - polls a dict
                    await asyncio.sleep(0.01)
            assert len(attempts) == 3
            due = datetime.now(UTC) + timedelta(seconds=0.3)
            sent = event(1)
            await publish_at(broker, "t", [sent], [due])
            [(got, arrived)] = await receive(broker, "t", "g", 1)
            assert got == sent and arrived >= due
        finally:
            await schedulers.stop()
        assert schedulers.running == {}
