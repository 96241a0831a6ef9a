"""The outbox relay: publishes its own sidecar's records at once and others' only after the
grace, keeps records (and their order) through broker failures, and forgets only what went
out. On state.sqlite (two handles on one file: two sidecars sharing a store)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.brokers.helpers import take
from tether.brokers import Broker, BrokerError
from tether.brokers.memory import MemoryBroker
from tether.platform.components import Component
from tether.platform.events import CloudEvent, utc_now
from tether.platform.events.json_format import to_json
from tether.platform.pubsub import PubSubRegistry, PubSubSpec
from tether.platform.state.registry import open_state_store
from tether.platform.state.relay import OutboxRelay
from tether.platform.state.store import OutboxRecord, SetOperation, StateStore

WAIT = 30.0


class FlakyBroker(MemoryBroker):
    """A memory broker whose first ``failures`` publishes fail, as a broker that is down."""

    def __init__(self, name: str, failures: int) -> None:
        super().__init__(name)
        self.failures = failures

    async def publish_batch(self, topic: str, events: object) -> None:  # type: ignore[override]
        if self.failures > 0:
            self.failures -= 1
            raise BrokerError("broker down")
        await super().publish_batch(topic, events)  # type: ignore[arg-type]


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[StateStore, StateStore]]:
    component = Component(name="s", type="state.sqlite",
                          metadata={"connectionString": str(tmp_path / "state.db")})
    a, b = await open_state_store(component), await open_state_store(component)
    yield a, b
    await a.close()
    await b.close()


def registry(name: str, failures: int = 0) -> tuple[PubSubRegistry, list[Broker]]:
    opened: list[Broker] = []

    def opener(spec: PubSubSpec) -> Broker:
        broker = FlakyBroker(name, failures)
        opened.append(broker)
        return broker

    return PubSubRegistry([Component(name="pubsub", type="pubsub.in-memory")],
                          opener=opener), opened


def record(n: int) -> OutboxRecord:
    # one partition key: order is kept per key, which is what the test checks
    event = CloudEvent(type="test.n", source="test", data={"n": n}, time=utc_now(),
                       extensions={"partitionkey": "one"})
    return OutboxRecord(id=event.id, pubsub="pubsub", topic="t", event=to_json(event))


async def commit(store: StateStore, n: int) -> OutboxRecord:
    rec = record(n)
    await store.transact([SetOperation(key=f"k{n}", value=b"1")], outbox=[rec])
    return rec


async def test_own_records_at_once_foreign_ones_after_the_grace(
    stores: tuple[StateStore, StateStore],
) -> None:
    a_store, b_store = stores
    name = f"relay-{uuid.uuid4().hex[:8]}"
    pubsub, _ = registry(name)
    a = OutboxRelay("s", a_store, pubsub, foreign_grace=3600)
    b = OutboxRelay("s", b_store, pubsub, foreign_grace=3600)
    mine = [await commit(a_store, n) for n in range(3)]
    # b did not write them and they are young: it leaves them to their writer
    assert await b.relay_once() == 0
    a.written([r.id for r in mine])
    assert await a.relay_once() == 3
    assert await b_store.outbox_pending(10) == []
    # a record whose writer died is taken over once it is older than the grace
    orphan = await commit(b_store, 3)
    late = OutboxRelay("s", a_store, pubsub, foreign_grace=0)
    assert await late.relay_once() == 1
    broker = await pubsub.broker("pubsub")
    async with broker.subscribe("t", "check") as subscription:
        got = [d.event for d in await take(subscription, 4)]
    assert [e.data["n"] for e in got] == [0, 1, 2, 3]
    assert got[3].id == orphan.id
    await pubsub.close()


async def test_a_broker_failure_keeps_the_records_and_their_order(
    stores: tuple[StateStore, StateStore],
) -> None:
    store, _ = stores
    name = f"relay-{uuid.uuid4().hex[:8]}"
    pubsub, _ = registry(name, failures=2)
    relay = OutboxRelay("s", store, pubsub, poll_interval=0.05)
    records = [await commit(store, n) for n in range(5)]
    relay.start()
    relay.written([r.id for r in records])
    try:
        broker = await pubsub.broker("pubsub")
        async with broker.subscribe("t", "check") as subscription:
            got = [d.event for d in await take(subscription, 5, wait=WAIT)]
        assert [e.id for e in got] == [r.id for r in records]
        async with asyncio.timeout(WAIT):
            while await store.outbox_pending(10):  # noqa: ASYNC110 - polls the store
                await asyncio.sleep(0.05)
    finally:
        await relay.close()
        await pubsub.close()


async def test_a_stop_that_arrives_with_a_wake_up_still_stops_the_relay(tmp_path: Path) -> None:
    # Python 3.11's asyncio.wait_for swallowed a cancel arriving in the same loop turn as
    # the wake-up, and the relay's loop kept running: close() then hung for ever
    from tether.platform.components import Component
    from tether.platform.pubsub import PubSubRegistry
    from tether.platform.state.registry import open_state_store
    from tether.platform.state.relay import OutboxRelay

    store = await open_state_store(
        Component(name="s", type="state.sqlite",
                  metadata={"connectionString": str(tmp_path / "s.db")})
    )
    try:
        relay = OutboxRelay("s", store, PubSubRegistry([]), poll_interval=0.2)
        relay.start()
        await asyncio.sleep(0.1)  # the relay now waits on its wake event
        task = relay._task
        assert task is not None
        relay.written([])  # a write wakes it ...
        task.cancel()  # ... in the same loop turn as the stop
        for _ in range(200):
            if task.done():
                break
            await asyncio.sleep(0.05)
        assert task.done(), "the relay's loop ignored the cancel"
    finally:
        await store.close()
