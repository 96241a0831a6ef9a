"""What only the Redis Streams backend has: partition streams, leases, XAUTOCLAIM takeover and
delivery counts kept by Redis (the shared semantics are in test_contract.py)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import zlib
from collections import defaultdict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.brokers.harness_redis import RedisHarness
from tests.brokers.helpers import event, nothing_more, take
from tests.servers import free_port, unavailable, wait_for_port
from tether.brokers import (
    BrokerConfigError,
    BrokerUnavailableError,
    Delivery,
    SubscribeOptions,
    Subscription,
    dead_letter_topic_for,
)
from tether.brokers.redis import Keys, RedisBroker, parse_url

WAIT = 30.0


@pytest.fixture
async def broker(redis_harness: RedisHarness) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(redis_harness.url())
    await broker.connect()
    yield broker
    await broker.close()


async def abandon(broker: RedisBroker, topic: str, group: str, count: int) -> list[bytes]:
    """Read ``count`` entries of partition 0 as a consumer that then dies without acking,
    and leave a lease of a dead member that is about to lapse."""
    stream = broker.keys.stream(topic, 0)
    await broker.client.xgroup_create(stream, group, id="0", mkstream=True)
    reply: Any = await broker.client.xreadgroup(
        group, "dead-consumer", {stream: ">"}, count=count
    )
    lease = broker.keys.lease(topic, group, 0)
    await broker.client.set(lease, "dead-member", px=300)
    return [entry_id for entry_id, _ in reply[0][1]]


async def test_entries_abandoned_by_a_dead_consumer_are_reclaimed_first(
    broker: RedisBroker, redis_harness: RedisHarness
) -> None:
    topic, group = redis_harness.topic(), redis_harness.group()
    sent = [event(i, key="k") for i in range(5)]
    await broker.create_topic(topic, 1)
    await broker.publish_batch(topic, sent)
    abandoned = await abandon(broker, topic, group, 2)
    async with broker.subscribe(topic, group) as subscription:
        received = await take(subscription, len(sent))
        await nothing_more(subscription, 0.5)
    assert [d.event.id for d in received] == [e.id for e in sent], "key order broke at takeover"
    assert [d.position for d in received[:2]] == abandoned
    assert [d.delivery_count for d in received] == [2, 2, 1, 1, 1]
    stream = broker.keys.stream(topic, 0)
    summary = await broker.client.xpending(stream, group)
    assert summary["pending"] == 0, "acks did not reach Redis"
    consumers = {c["name"] for c in await broker.client.xinfo_consumers(stream, group)}
    assert b"dead-consumer" not in consumers


async def test_a_held_lease_keeps_a_new_member_off_the_stream(
    broker: RedisBroker, redis_harness: RedisHarness
) -> None:
    topic, group = redis_harness.topic(), redis_harness.group()
    await broker.create_topic(topic, 1)
    await broker.publish(topic, event(0))
    await broker.client.set(broker.keys.lease(topic, group, 0), "other-member", px=60_000)
    async with broker.subscribe(topic, group) as subscription:
        await nothing_more(subscription, 1.0)
        assert subscription.assigned_partitions == []
        await broker.client.delete(broker.keys.lease(topic, group, 0))  # the owner leaves
        [delivery] = await take(subscription, 1)
    assert delivery.event.data == {"i": 0}


async def test_delivery_count_is_kept_in_redis_across_members(
    redis_harness: RedisHarness,
) -> None:
    topic, group = redis_harness.topic(), redis_harness.group()
    options = SubscribeOptions(max_deliveries=3)
    first = RedisBroker(redis_harness.url())
    await first.connect()
    await first.create_topic(topic, 1)
    await first.publish(topic, event(0, key="poison"))
    subscription = first.subscribe(topic, group, options)
    await subscription.start()
    [delivery] = await take(subscription, 1, ack=False)
    await delivery.nack(delay=60)  # the redelivery never comes: this member goes away
    stream = first.keys.stream(topic, 0)
    [pending] = await first.client.xpending_range(stream, group, "-", "+", 10)
    assert pending["times_delivered"] == 2
    await first.close(drain_timeout=0)

    second = RedisBroker(redis_harness.url())
    await second.connect()
    try:
        async with second.subscribe(topic, group, options) as subscription:
            [again] = await take(subscription, 1, ack=False)
            assert again.event.id == delivery.event.id
            assert again.delivery_count == 3
            await again.nack()  # the third delivery failed too: dead-lettered
            await nothing_more(subscription, 0.5)
        dlq = second.subscribe(dead_letter_topic_for(topic), redis_harness.group("dl"))
        async with dlq:
            [dead] = await take(dlq, 1)
    finally:
        await second.close()
    assert dead.event.id == delivery.event.id
    assert dead.event.extensions["deadletterdeliveries"] == "3"


async def test_an_entry_whose_handlers_kept_dying_is_dead_lettered_on_reclaim(
    broker: RedisBroker, redis_harness: RedisHarness
) -> None:
    topic, group = redis_harness.topic(), redis_harness.group()
    poison, fine = event(0, key="k"), event(1, key="k")
    await broker.create_topic(topic, 1)
    await broker.publish_batch(topic, [poison, fine])
    [poison_id] = await abandon(broker, topic, group, 1)
    stream = broker.keys.stream(topic, 0)
    # as if three consumers in a row had died while handling it
    await broker.client.xclaim(
        stream, group, "dead-consumer", 0, [poison_id], retrycount=3, justid=True
    )
    options = SubscribeOptions(max_deliveries=3)
    async with broker.subscribe(topic, group, options) as subscription:
        [delivery] = await take(subscription, 1)
        await nothing_more(subscription, 0.5)
    assert delivery.event.id == fine.id
    async with broker.subscribe(dead_letter_topic_for(topic), redis_harness.group("dl")) as dlq:
        [dead] = await take(dlq, 1)
    assert dead.event.id == poison.id
    assert "max_deliveries" in dead.event.extensions["deadletterreason"]


async def test_a_key_maps_to_one_stream_and_keyless_events_spread(
    broker: RedisBroker, redis_harness: RedisHarness
) -> None:
    topic = redis_harness.topic()
    keys = [f"key-{k}" for k in range(12)]
    keyed = [event(i, key=keys[i % len(keys)]) for i in range(120)]
    keyless = [event(1000 + i) for i in range(8)]
    await broker.create_topic(topic, 4)
    await broker.publish_batch(topic, keyed + keyless)
    streams_of: dict[str, set[int]] = defaultdict(set)
    order_of: dict[str, list[int]] = defaultdict(list)
    keyless_streams: list[int] = []
    for partition in range(4):
        entries: Any = await broker.client.xrange(broker.keys.stream(topic, partition))
        for _, fields in entries:
            i = int(fields[b"data"].decode().split(":")[1].rstrip("}"))
            key = fields.get(b"ce_partitionkey")
            if key is None:
                keyless_streams.append(partition)
                continue
            streams_of[key.decode()].add(partition)
            order_of[key.decode()].append(i)
    for key in keys:
        assert streams_of[key] == {zlib.crc32(key.encode()) % 4}
        assert order_of[key] == sorted(order_of[key])
    assert sorted(keyless_streams) == [0, 0, 1, 1, 2, 2, 3, 3]


async def test_two_members_hold_disjoint_partitions(
    redis_harness: RedisHarness,
) -> None:
    topic, group = redis_harness.topic(), redis_harness.group()
    one, two = RedisBroker(redis_harness.url()), RedisBroker(redis_harness.url())
    await one.connect()
    await two.connect()
    try:
        await one.create_topic(topic, 4)
        first, second = one.subscribe(topic, group), two.subscribe(topic, group)
        await first.start()
        assert first.assigned_partitions == [0, 1, 2, 3]
        await second.start()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT
        while not (first.assigned_partitions and second.assigned_partitions):
            assert set(first.assigned_partitions).isdisjoint(second.assigned_partitions)
            assert loop.time() < deadline, "the second member never got a partition"
            await asyncio.sleep(0.05)
        assert set(first.assigned_partitions).isdisjoint(second.assigned_partitions)
        await second.close()
        while first.assigned_partitions != [0, 1, 2, 3]:  # the leaver's partitions come back
            assert loop.time() < deadline, "the partitions of a member that left never moved"
            await asyncio.sleep(0.05)
    finally:
        await one.close()
        await two.close()


async def test_approximate_trimming_when_asked(redis_harness: RedisHarness) -> None:
    topic = redis_harness.topic()
    broker = RedisBroker(redis_harness.url() + "&maxlen=10")
    await broker.connect()
    try:
        await broker.create_topic(topic, 1)
        await broker.publish_batch(topic, [event(i) for i in range(1000)])
        assert await broker.client.xlen(broker.keys.stream(topic, 0)) < 1000
    finally:
        await broker.close()


async def test_more_concurrent_publishes_than_connections_all_succeed(
    broker: RedisBroker, redis_harness: RedisHarness
) -> None:
    # past the pool's connections a publish waits for one instead of failing
    # (redis-py's default pool raised "Too many connections")
    topic = redis_harness.topic()
    await broker.create_topic(topic, 1)
    await asyncio.gather(*(broker.publish(topic, event(i)) for i in range(300)))
    assert await broker.client.xlen(broker.keys.stream(topic, 0)) == 300


async def test_a_subscription_outlives_a_redis_restart(tmp_path: Path) -> None:
    """Redis goes away and comes back empty (no persistence): publishing fails clearly
    meanwhile, and the member re-creates its group and consumes again afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not on PATH")
    assert binary is not None
    port = free_port()

    def start() -> subprocess.Popen[bytes]:
        process = subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(tmp_path)],
            stdout=subprocess.DEVNULL,
        )
        wait_for_port(port, 10, process)
        return process

    server = start()
    broker = RedisBroker(f"redis://127.0.0.1:{port}/0?session_timeout=3&heartbeat_interval=0.5")
    try:
        await broker.connect()
        async with broker.subscribe("t", "g") as subscription:
            await broker.publish("t", event(1))
            await take(subscription, 1)
            server.terminate()
            server.wait(10)
            with pytest.raises(BrokerUnavailableError):
                await broker.publish("t", event(2))
            server = start()
            await broker.publish("t", event(3))
            [delivery] = await take(subscription, 1)
        assert delivery.event.data == {"i": 3}
    finally:
        await broker.close()
        server.terminate()
        server.wait(10)


async def test_unreachable_redis_is_unavailable_and_the_password_is_not_shown() -> None:
    broker = RedisBroker(f"redis://:s3cret@127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerUnavailableError, match=r"127\.0\.0\.1") as failure:
        await broker.connect()
    assert "s3cret" not in str(failure.value)
    assert "s3cret" not in broker.url


def test_url_options_are_ours_and_the_rest_go_to_redis_py() -> None:
    client_url, settings, shown = parse_url(
        "rediss://:pw@h:6380/2?partitions=8&session_timeout=6&heartbeat_interval=0.5"
        "&namespace=app&ssl_cert_reqs=none"
    )
    assert client_url == "rediss://:pw@h:6380/2?ssl_cert_reqs=none"
    assert (settings.default_partitions, settings.session_timeout) == (8, 6.0)
    assert (settings.heartbeat_interval, settings.namespace) == (0.5, "app")
    assert shown.startswith("rediss://:***@h:6380/2?")
    with pytest.raises(BrokerConfigError):
        parse_url("redis://h/0?partitions=many")
    with pytest.raises(BrokerConfigError):
        parse_url("redis://h/0?session_timeout=1&heartbeat_interval=2")


def test_names_with_colons_do_not_collide() -> None:
    keys = Keys("tether")
    assert keys.stream("a:p0", 0) != keys.stream("a", 0)
    assert keys.members("a:g:b", "c") != keys.members("a", "b:g:c")


async def test_a_rebalance_mid_stream_keeps_each_key_in_order(
    redis_harness: RedisHarness,
) -> None:
    """A second member joins while the first is busy: partitions move by graceful handover
    (drain, ack, release, reclaim), so no key is handled twice at once or out of order."""
    topic, group = redis_harness.topic(), redis_harness.group()
    keys = [f"key-{k}" for k in range(16)]
    sent = [event(i, key=keys[i % len(keys)]) for i in range(640)]  # 40 per key
    handled: list[tuple[str, int]] = []
    active: set[str] = set()
    overlaps: list[str] = []
    busy, done = asyncio.Event(), asyncio.Event()
    one, two = RedisBroker(redis_harness.url()), RedisBroker(redis_harness.url())
    await one.connect()
    await two.connect()

    async def handle(delivery: Delivery) -> None:
        key = delivery.key or ""
        if key in active:
            overlaps.append(key)
        active.add(key)
        # slow enough that the handover lands mid-stream, some slower than a lease claim
        await asyncio.sleep(0.3 if delivery.event.data["i"] % 50 == 0 else 0.02)
        handled.append((key, delivery.event.data["i"]))
        active.discard(key)
        await delivery.ack()
        if len(handled) >= 40:
            busy.set()
        if len({i for _, i in handled}) == len(sent):
            done.set()

    async def dispatch(subscription: Subscription) -> None:
        tasks: set[asyncio.Task[None]] = set()
        async for delivery in subscription:
            task = asyncio.create_task(handle(delivery))
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    try:
        await one.create_topic(topic, 4)
        await one.publish_batch(topic, sent)
        first, second = one.subscribe(topic, group), two.subscribe(topic, group)
        await first.start()
        dispatchers = [asyncio.create_task(dispatch(first))]
        await asyncio.wait_for(busy.wait(), WAIT)
        await second.start()
        dispatchers.append(asyncio.create_task(dispatch(second)))
        await asyncio.wait_for(done.wait(), WAIT)
        assert second.assigned_partitions, "no rebalance happened"
        for task in dispatchers:
            task.cancel()
        await asyncio.gather(first.close(), second.close())
    finally:
        await one.close()
        await two.close()
    assert overlaps == []
    for key in keys:
        seen = [i for k, i in handled if k == key]
        assert seen == sorted(set(seen)), f"{key}: {seen}"
