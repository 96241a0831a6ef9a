"""The broker contract: one suite, run unchanged on every backend (see harness.py).

Every case publishes to a fresh topic and consumes in a fresh group, so backends that share
one server across the session never see each other's events.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.brokers.harness import Harness
from tests.brokers.helpers import nothing_more, take
from tether.brokers import (
    Broker,
    BrokerClosedError,
    Delivery,
    SubscribeOptions,
    Subscription,
    dead_letter_topic_for,
)
from tether.brokers.subscription import MALFORMED_EVENT_TYPE
from tether.platform.events import CloudEvent

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # generous ceiling for slow group joins (tansu: ~session_timeout / 2)


def require(harness: Harness, case: str) -> None:
    reason = harness.unsupported.get(case)
    if reason:
        pytest.skip(f"{harness.name}: {reason}")


def event(i: int, key: str | None = None, **extra: object) -> CloudEvent:
    extensions = {"partitionkey": key} if key is not None else {}
    return CloudEvent(
        type="test.event", source="/contract", data={"i": i}, extensions=extensions, **extra  # type: ignore[arg-type]
    )


async def connected(harness: Harness) -> Broker:
    broker = harness.broker()
    await broker.connect()
    return broker


async def test_round_trip_of_every_attribute(harness: Harness) -> None:
    topic, group = harness.topic(), harness.group()
    full = CloudEvent(
        id="evt-1",
        type="com.example.order.created",
        source="/orders/eu",
        subject="order-42",
        time=datetime(2026, 11, 24, 12, 30, 5, 123000, tzinfo=UTC),
        datacontenttype="application/json",
        dataschema="https://example.com/schemas/order.json",
        data={"amount": 12.5, "items": ["a", "b"], "note": "zürich"},
        extensions={
            "partitionkey": "order-42",
            "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "tracestate": "congo=t61rcWkgMzE",
            "tenant": "acme",
        },
    )
    binary = CloudEvent(
        type="com.example.blob", source="/blobs", data=bytes(range(256)) + b"\x00\xff",
        datacontenttype="application/octet-stream",
    )
    text = CloudEvent(
        type="com.example.text", source="/t", data="héllo", datacontenttype="text/plain"
    )
    empty = CloudEvent(type="com.example.empty", source="/e")
    sent = [full, binary, text, empty]
    async with harness.broker() as broker:
        await broker.create_topic(topic, 1)
        for one in sent:
            await broker.publish(topic, one)
        async with broker.subscribe(topic, group) as subscription:
            by_id = {d.event.id: d.event for d in await take(subscription, len(sent))}
    # order across different keys is not part of the contract: compare event by event
    assert set(by_id) == {one.id for one in sent}
    for one in sent:
        assert by_id[one.id] == one
    assert by_id[full.id].partitionkey == "order-42"
    assert by_id[full.id].time == full.time
    assert isinstance(by_id[binary.id].data, bytes) and by_id[binary.id].data == binary.data
    assert by_id[empty.id].data is None


async def test_batch_publish_delivers_every_event_once(harness: Harness) -> None:
    topic, group = harness.topic(), harness.group()
    sent = [event(i, key=f"k{i % 7}") for i in range(500)]
    async with harness.broker() as broker:
        await broker.publish_batch(topic, sent)
        async with broker.subscribe(topic, group) as subscription:
            received = await take(subscription, len(sent))
            await nothing_more(subscription, 0.5)
    assert sorted(d.event.id for d in received) == sorted(e.id for e in sent)


async def test_each_group_gets_every_event(harness: Harness) -> None:
    topic = harness.topic()
    sent = [event(i) for i in range(20)]
    async with harness.broker() as broker:
        await broker.publish_batch(topic, sent)
        for group in (harness.group("a"), harness.group("b")):
            async with broker.subscribe(topic, group) as subscription:
                received = await take(subscription, len(sent))
            assert {d.event.id for d in received} == {e.id for e in sent}


async def test_acked_events_are_not_redelivered_and_restart_resumes(harness: Harness) -> None:
    require(harness, "restart")
    topic, group = harness.topic(), harness.group()
    first, second = [event(i) for i in range(10)], [event(i) for i in range(10, 15)]
    async with harness.broker() as broker:
        await broker.publish_batch(topic, first)
        async with broker.subscribe(topic, group) as subscription:
            await take(subscription, len(first))
    # a new broker object, as after a process restart
    async with harness.broker() as broker:
        await broker.publish_batch(topic, second)
        async with broker.subscribe(topic, group) as subscription:
            received = await take(subscription, len(second))
            await nothing_more(subscription, 1.0)
    assert {d.event.id for d in received} == {e.id for e in second}


async def test_unacked_events_are_redelivered_after_restart(harness: Harness) -> None:
    require(harness, "restart")
    topic, group = harness.topic(), harness.group()
    sent = [event(i) for i in range(6)]
    async with harness.broker() as broker:
        await broker.publish_batch(topic, sent)
        async with broker.subscribe(topic, group) as subscription:
            held = await take(subscription, 3, ack=False)
            for delivery in held[:1]:
                await delivery.ack()
            await subscription.close(drain_timeout=0.2)  # two stay unsettled: not committed
    async with harness.broker() as broker, broker.subscribe(topic, group) as subscription:
        received = await take(subscription, len(sent) - 1)
    assert {d.event.id for d in received} == {e.id for e in sent} - {held[0].event.id}


async def test_nack_with_delay_redelivers_later_without_blocking_other_keys(
    harness: Harness,
) -> None:
    topic, group = harness.topic(), harness.group()
    slow, others = event(0, key="slow"), [event(i, key=f"other{i}") for i in range(1, 6)]
    async with harness.broker() as broker:
        await broker.create_topic(topic, 1)  # one partition: other keys share it with "slow"
        await broker.publish(topic, slow)
        await broker.publish_batch(topic, others)
        async with broker.subscribe(topic, group) as subscription:
            loop = asyncio.get_running_loop()
            first = await take(subscription, 1, ack=False)
            assert first[0].event.id == slow.id and first[0].delivery_count == 1
            nacked_at = loop.time()
            await first[0].nack(delay=1.5)
            rest = await take(subscription, len(others))
            others_done = loop.time()
            again = await take(subscription, 1)
            redelivered_at = loop.time()
    assert {d.event.id for d in rest} == {e.id for e in others}
    assert others_done < nacked_at + 1.5, "other keys waited for the nack delay"
    assert again[0].event.id == slow.id
    assert again[0].delivery_count == 2
    assert redelivered_at >= nacked_at + 1.5


async def test_nack_keeps_the_key_in_order(harness: Harness) -> None:
    topic, group = harness.topic(), harness.group()
    sent = [event(i, key="same") for i in range(4)]
    async with harness.broker() as broker:
        await broker.publish_batch(topic, sent)
        async with broker.subscribe(topic, group) as subscription:
            first = await take(subscription, 1, ack=False)
            await first[0].nack(delay=0.3)
            # while event 0 waits for redelivery, event 1 (same key) must not be handed out
            again = await take(subscription, 1)
            rest = await take(subscription, 3)
    assert [again[0].event.id] + [d.event.id for d in rest] == [e.id for e in sent]


async def test_ungated_subscription_hands_one_keys_records_out_together(
    harness: Harness,
) -> None:
    # gate_by_key=False: the consumer gets a key's records before settling the first (the
    # workflow runtime drains an instance's events as one batch), in order
    topic, group = harness.topic(), harness.group()
    sent = [event(i, key="same") for i in range(5)]
    options = SubscribeOptions(gate_by_key=False)
    async with harness.broker() as broker:
        await broker.publish_batch(topic, sent)
        async with broker.subscribe(topic, group, options) as subscription:
            got = await take(subscription, 5, ack=False)
            for delivery in got:
                await delivery.ack()
    assert [d.event.id for d in got] == [e.id for e in sent]


async def test_dead_letter_after_max_deliveries(harness: Harness) -> None:
    topic, group = harness.topic(), harness.group()
    poison, fine = event(0, key="p"), event(1, key="f")
    options = SubscribeOptions(max_deliveries=3)
    async with harness.broker() as broker:
        await broker.publish_batch(topic, [poison, fine])
        counts: list[int] = []
        async with broker.subscribe(topic, group, options) as subscription:

            async def handle() -> None:
                async for delivery in subscription:
                    if delivery.event.id == poison.id:
                        counts.append(delivery.delivery_count)
                        await delivery.nack(delay=0.05)
                        if len(counts) == 3:
                            return
                    else:
                        await delivery.ack()

            await asyncio.wait_for(handle(), WAIT)
        async with broker.subscribe(dead_letter_topic_for(topic), harness.group("dl")) as dlq:
            dead = await take(dlq, 1)
            await nothing_more(dlq, 0.5)
        async with broker.subscribe(topic, group) as subscription:
            await nothing_more(subscription, 1.0)  # the poison event is settled for the group
    assert counts == [1, 2, 3]
    corpse = dead[0].event
    assert corpse.id == poison.id and corpse.data == poison.data
    assert corpse.extensions["deadlettertopic"] == topic
    assert "max_deliveries" in corpse.extensions["deadletterreason"]


async def test_explicit_dead_letter_goes_to_named_topic(harness: Harness) -> None:
    topic, group, dlq_topic = harness.topic(), harness.group(), harness.topic("dead")
    sent = event(0)
    async with harness.broker() as broker:
        await broker.publish(topic, sent)
        options = SubscribeOptions(dead_letter_topic=dlq_topic)
        async with broker.subscribe(topic, group, options) as subscription:
            [delivery] = await take(subscription, 1, ack=False)
            await delivery.dead_letter("bad order")
        async with broker.subscribe(dlq_topic, harness.group("dl")) as dlq:
            [dead] = await take(dlq, 1)
    assert dead.event.id == sent.id
    assert dead.event.extensions["deadletterreason"] == "bad order"


async def test_per_key_order_under_concurrency(harness: Harness) -> None:
    topic, group = harness.topic(), harness.group()
    keys = [f"key{k}" for k in range(8)]
    sent = [event(i, key=keys[i % len(keys)]) for i in range(400)]
    seen: dict[str, list[int]] = defaultdict(list)
    active: set[str] = set()
    overlaps: list[str] = []
    async with harness.broker() as broker:
        await broker.create_topic(topic, 2)
        await broker.publish_batch(topic, sent)
        async with broker.subscribe(topic, group) as subscription:
            done = asyncio.Event()

            async def handle(delivery: Delivery) -> None:
                key = delivery.key or ""
                if key in active:
                    overlaps.append(key)
                active.add(key)
                await asyncio.sleep(0.001 * (delivery.event.data["i"] % 3))
                seen[key].append(delivery.event.data["i"])
                active.discard(key)
                await delivery.ack()
                if sum(map(len, seen.values())) == len(sent):
                    done.set()

            handlers: set[asyncio.Task[None]] = set()

            async def dispatch() -> None:
                async for delivery in subscription:
                    task = asyncio.create_task(handle(delivery))  # concurrency across keys
                    handlers.add(task)
                    task.add_done_callback(handlers.discard)

            dispatcher = asyncio.create_task(dispatch())
            await asyncio.wait_for(done.wait(), WAIT)
            dispatcher.cancel()
    assert overlaps == [], "two deliveries of one key were handled at the same time"
    for key in keys:
        assert seen[key] == sorted(seen[key]), f"{key} out of order"
        assert len(seen[key]) == len(sent) // len(keys)


async def test_two_consumers_in_one_group_split_the_partitions(harness: Harness) -> None:
    topic, group = harness.topic(), harness.group()
    sent = [event(i, key=f"k{i}") for i in range(200)]
    async with harness.broker() as one, harness.broker() as two:
        await one.create_topic(topic, 4)
        first, second = one.subscribe(topic, group), two.subscribe(topic, group)
        await asyncio.gather(first.start(), second.start())
        got: dict[str, list[str]] = {"first": [], "second": []}
        done = asyncio.Event()

        async def drain(name: str, subscription: Subscription) -> None:
            async for delivery in subscription:
                got[name].append(delivery.event.id)
                await delivery.ack()
                await asyncio.sleep(0.002)  # keep both busy so neither drains all alone
                if len(set(got["first"]) | set(got["second"])) == len(sent):
                    done.set()

        tasks = [asyncio.create_task(drain("first", first)),
                 asyncio.create_task(drain("second", second))]
        await asyncio.sleep(0.5)  # let both members join before the events arrive
        await one.publish_batch(topic, sent)
        await asyncio.wait_for(done.wait(), WAIT)
        for task in tasks:
            task.cancel()
        await asyncio.gather(first.close(), second.close())
    assert set(got["first"]) | set(got["second"]) == {e.id for e in sent}
    assert got["first"] and got["second"], "one member received nothing: partitions not split"


async def test_killed_consumer_process_loses_nothing(harness: Harness, tmp_path: Path) -> None:
    require(harness, "process_kill")
    topic, group = harness.topic(), harness.group()
    sent = [event(i, key=f"k{i % 50}") for i in range(600)]
    url = harness.url()
    async with harness.broker() as broker:
        await broker.create_topic(topic, 4)
        outs = [tmp_path / "victim.txt", tmp_path / "survivor.txt"]
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "tests.brokers.consumer_process", url, topic, group,
                 str(out), "0.004"],
                cwd=ROOT, env=env,
            )
            for out in outs
        ]
        try:
            await wait_for_lines(outs, lambda counts: all(c >= 1 for c in counts), "both ready")
            await asyncio.sleep(1.0)  # let the group settle with two members
            await broker.publish_batch(topic, sent)
            # kill the victim mid-stream, once it has handled some events but not all
            await wait_for_lines(outs[:1], lambda counts: counts[0] >= 30, "victim busy")
            procs[0].send_signal(signal.SIGKILL)
            procs[0].wait(10)
            expected = {e.id for e in sent}

            def all_seen(_: list[int]) -> bool:
                return expected <= handled_ids(outs)

            await wait_for_lines(outs, all_seen, "every event handled", timeout=90)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(15)
    victim, survivor = (handled_ids([out]) for out in outs)
    assert victim and victim < expected, "the victim was killed before or after the stream"
    assert expected - victim <= survivor, "an event the victim never finished was lost"
    assert handled_ids(outs) == expected


def handled_ids(files: list[Path]) -> set[str]:
    ids: set[str] = set()
    for path in files:
        if path.exists():
            ids.update(line for line in path.read_text().splitlines() if line and line[0] != "#")
    return ids


async def wait_for_lines(
    files: list[Path], ready: object, what: str, timeout: float = WAIT
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        counts = [len(p.read_text().splitlines()) if p.exists() else 0 for p in files]
        if ready(counts):  # type: ignore[operator]
            return
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}: line counts {counts}")
        await asyncio.sleep(0.05)


async def test_graceful_close_drains_in_flight_deliveries(harness: Harness) -> None:
    topic, group = harness.topic(), harness.group()
    sent = [event(i, key=f"k{i}") for i in range(3)]
    async with harness.broker() as broker:
        await broker.publish_batch(topic, sent)
        subscription = broker.subscribe(topic, group)
        await subscription.start()
        held = await take(subscription, 3, ack=False)

        async def finish_late() -> None:
            await asyncio.sleep(0.5)
            for delivery in held:
                await delivery.ack()

        finisher = asyncio.create_task(finish_late())
        await subscription.close(drain_timeout=30)
        assert finisher.done(), "close() returned before the in-flight deliveries settled"
        with pytest.raises(StopAsyncIteration):
            await subscription.__anext__()
        # what was drained was committed: the group gets nothing again
        async with broker.subscribe(topic, group) as again:
            await nothing_more(again, 1.5)


async def test_publishing_to_a_closed_broker_is_a_clear_error(harness: Harness) -> None:
    broker = harness.broker()
    with pytest.raises(BrokerClosedError):
        await broker.publish(harness.topic(), event(0))
    await broker.connect()
    await broker.close()
    with pytest.raises(BrokerClosedError):
        await broker.publish(harness.topic(), event(0))
    with pytest.raises(BrokerClosedError):
        await broker.publish_batch(harness.topic(), [event(0)])


async def test_bad_bytes_go_to_the_dead_letter_topic_and_consumption_goes_on(
    harness: Harness,
) -> None:
    topic, group = harness.topic(), harness.group()
    before, after = event(0), event(1)
    async with harness.broker() as broker:
        await broker.create_topic(topic, 1)
        await broker.publish(topic, before)
        await harness.inject_raw(topic, b"\x00\x01 definitely not a cloudevent")
        await broker.publish(topic, after)
        async with broker.subscribe(topic, group) as subscription:
            received = await take(subscription, 2)
        async with broker.subscribe(dead_letter_topic_for(topic), harness.group("dl")) as dlq:
            [dead] = await take(dlq, 1)
    assert sorted(d.event.id for d in received) == sorted([before.id, after.id])
    assert dead.event.type == MALFORMED_EVENT_TYPE
    assert dead.event.extensions["deadlettertopic"] == topic
    assert dead.event.extensions["deadletterreason"]
    assert isinstance(dead.event.data, bytes) and dead.event.data
