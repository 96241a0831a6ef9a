"""Group commit of concurrent single publishes (tether.platform.aio.Grouped) on the real
backends: every event arrives once, a bad event fails alone, a broker error fails every
member (no hang), and a caller cancelled while it waits does not cancel the others."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from tests.brokers.harness import Harness
from tests.brokers.helpers import WAIT, event, take
from tether.brokers import Broker, BrokerError, BrokerUnavailableError, open_broker
from tether.platform.aio import Grouped
from tether.platform.events import CloudEvent

GROUPED_BACKENDS = ("embedded", "redis", "kafka")


@pytest.fixture(params=GROUPED_BACKENDS)
def grouped(request: pytest.FixtureRequest) -> Harness:
    value: Harness = request.getfixturevalue(f"{request.param}_harness")
    return value


def bad_event(i: int) -> CloudEvent:
    """An event no backend can store: an attribute with a lone surrogate (not UTF-8)."""
    return CloudEvent(type="test.event", source="/test", subject="\ud800", data={"i": i})


async def consume(broker: Broker, topic: str, count: int) -> list[int]:
    async with broker.subscribe(topic, f"g-{topic}") as subscription:
        deliveries = await take(subscription, count)
    return [delivery.event.data["i"] for delivery in deliveries if delivery.event is not None]


def count_calls(broker: Broker) -> list[int]:
    """Wrap the broker's group runner; the list gets each group's size."""
    publishes: Grouped[tuple[str, CloudEvent], None] = broker._publishes  # type: ignore[attr-defined]
    sizes: list[int] = []
    run = publishes._run

    async def counting(requests: Sequence[tuple[str, CloudEvent]]) -> Sequence[object]:
        sizes.append(len(requests))
        return await run(requests)

    publishes._run = counting  # type: ignore[assignment]
    return sizes


# --- the mechanism ------------------------------------------------------------------------------
async def test_grouped_gives_each_caller_its_own_result_and_error() -> None:
    groups: list[list[int]] = []

    async def run(requests: Sequence[int]) -> list[int | BaseException]:
        groups.append(list(requests))
        await asyncio.sleep(0.01)
        return [ValueError(r) if r == 3 else r * 10 for r in requests]

    grouped: Grouped[int, int] = Grouped(run)
    results = await asyncio.gather(*(grouped.submit(i) for i in range(6)),
                                   return_exceptions=True)
    assert results[:3] == [0, 10, 20] and results[4:] == [40, 50]
    assert isinstance(results[3], ValueError)
    assert groups == [[0, 1, 2, 3, 4, 5]]  # one loop turn, one group

    off: Grouped[int, int] = Grouped(run, grouping=False)
    assert await asyncio.gather(off.submit(1), off.submit(2)) == [10, 20]
    assert groups[1:] == [[1], [2]]


async def test_grouped_failure_of_the_call_fails_every_member() -> None:
    async def run(requests: Sequence[int]) -> list[int | BaseException]:
        raise OSError("down")

    grouped: Grouped[int, int] = Grouped(run)
    results = await asyncio.gather(*(grouped.submit(i) for i in range(3)),
                                   return_exceptions=True)
    assert all(isinstance(r, OSError) for r in results)


async def test_grouped_next_group_forms_while_one_is_in_flight() -> None:
    groups: list[list[int]] = []
    release = asyncio.Event()

    async def run(requests: Sequence[int]) -> list[int | BaseException]:
        groups.append(list(requests))
        await release.wait()
        return list(requests)

    grouped: Grouped[int, int] = Grouped(run, max_group=3)
    first = asyncio.ensure_future(grouped.submit(0))
    await asyncio.sleep(0.01)  # the first group (0) is in flight
    rest = [asyncio.ensure_future(grouped.submit(i)) for i in range(1, 6)]
    await asyncio.sleep(0.01)
    release.set()
    assert await asyncio.gather(first, *rest) == list(range(6))
    assert groups == [[0], [1, 2, 3], [4, 5]]  # bounded, in arrival order


async def test_grouped_cancelled_caller_leaves_the_others_alone() -> None:
    groups: list[list[int]] = []
    release = asyncio.Event()

    async def run(requests: Sequence[int]) -> list[int | BaseException]:
        groups.append(list(requests))
        await release.wait()
        return list(requests)

    grouped: Grouped[int, int] = Grouped(run)
    in_flight = [asyncio.ensure_future(grouped.submit(i)) for i in range(3)]
    await asyncio.sleep(0.01)
    waiting = [asyncio.ensure_future(grouped.submit(i)) for i in range(3, 6)]
    await asyncio.sleep(0)
    in_flight[1].cancel()  # its group is on the wire: its answer is dropped
    waiting[0].cancel()  # not sent yet: it leaves the next group
    release.set()
    results = await asyncio.gather(*in_flight, *waiting, return_exceptions=True)
    assert results[0] == 0 and results[2] == 2 and results[4:] == [4, 5]
    assert isinstance(results[1], asyncio.CancelledError)
    assert isinstance(results[3], asyncio.CancelledError)
    assert groups == [[0, 1, 2], [4, 5]]


# --- on the backends ----------------------------------------------------------------------------
@pytest.mark.parametrize("grouping", [True, False], ids=["grouped", "alone"])
async def test_concurrent_publishes_arrive_once_each(grouped: Harness, grouping: bool) -> None:
    topics = [grouped.topic() for _ in range(3)]
    async with grouped.broker() as broker:
        broker._publishes.grouping = grouping  # type: ignore[attr-defined]
        sizes = count_calls(broker)
        for topic in topics:
            await broker.create_topic(topic, 2)
        await asyncio.gather(*(
            broker.publish(topics[i % 3], event(i, key=f"k{i % 7}")) for i in range(300)
        ))
        if grouping:
            assert len(sizes) < 30, sizes  # 300 publishes in a few groups
        else:
            assert sizes == [1] * 300
        for n, topic in enumerate(topics):
            got = await consume(broker, topic, 100)
            assert sorted(got) == list(range(n, 300, 3))


async def test_a_callers_publishes_keep_their_order(grouped: Harness) -> None:
    topic = grouped.topic()
    async with grouped.broker() as broker:
        await broker.create_topic(topic, 2)

        async def caller(c: int) -> None:
            for i in range(20):
                await broker.publish(topic, event(c * 100 + i, key=f"caller-{c}"))

        await asyncio.gather(*(caller(c) for c in range(5)))
        got = await consume(broker, topic, 100)
    for c in range(5):
        assert [i for i in got if i // 100 == c] == [c * 100 + i for i in range(20)]


async def test_one_bad_publish_fails_alone(grouped: Harness) -> None:
    topic = grouped.topic()
    async with grouped.broker() as broker:
        await broker.create_topic(topic, 2)
        sizes = count_calls(broker)
        results = await asyncio.gather(
            *(broker.publish(topic, bad_event(i) if i == 7 else event(i)) for i in range(20)),
            return_exceptions=True,
        )
        assert len(sizes) < 20  # they were grouped
        assert isinstance(results[7], UnicodeEncodeError)
        assert [r for i, r in enumerate(results) if i != 7] == [None] * 19
        got = await consume(broker, topic, 19)
        assert sorted(got) == [i for i in range(20) if i != 7]


async def test_a_cancelled_publisher_does_not_cancel_the_group(grouped: Harness) -> None:
    topic = grouped.topic()
    async with grouped.broker() as broker:
        await broker.create_topic(topic, 2)
        tasks = [asyncio.ensure_future(broker.publish(topic, event(i))) for i in range(50)]
        await asyncio.sleep(0)
        tasks[10].cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert isinstance(results[10], asyncio.CancelledError)
        assert [r for i, r in enumerate(results) if i != 10] == [None] * 49
        # the cancelled one may or may not have gone out; the others each arrived once
        await broker.publish(topic, event(999))
        got = await consume(broker, topic, 50)
        more = await consume(broker, topic, 1) if 999 not in got else []
        got += more
        assert sorted(i for i in got if i not in (10, 999)) == [i for i in range(50) if i != 10]
        assert len(got) == len(set(got))


async def test_redis_a_stream_that_refuses_fails_only_its_publishes(
    redis_harness: Harness,
) -> None:
    good, broken = redis_harness.topic(), redis_harness.topic()
    async with redis_harness.broker() as broker:
        await broker.create_topic(good, 2)
        await broker.create_topic(broken, 2)
        client: aioredis.Redis = broker.client  # type: ignore[attr-defined]
        for partition in range(2):  # a key of the wrong type: XADD answers WRONGTYPE
            await client.set(broker.keys.stream(broken, partition), "x")  # type: ignore[attr-defined]
        results = await asyncio.gather(
            *(broker.publish(broken if i % 4 == 0 else good, event(i)) for i in range(40)),
            return_exceptions=True,
        )
        for i, result in enumerate(results):
            if i % 4 == 0:
                assert isinstance(result, BrokerUnavailableError) and "WRONGTYPE" in str(result)
            else:
                assert result is None
        got = await consume(broker, good, 30)
        assert sorted(got) == [i for i in range(40) if i % 4]


async def test_redis_a_server_that_stops_answering_fails_every_member(
    redis_harness: Harness,
) -> None:
    topic = redis_harness.topic()
    async with redis_harness.broker() as broker:
        await broker.create_topic(topic, 2)
        client: aioredis.Redis = broker.client  # type: ignore[attr-defined]
        admin = aioredis.Redis.from_url(f"redis://{redis_harness.address}")  # type: ignore[attr-defined]
        await admin.execute_command("CLIENT", "PAUSE", "30000", "WRITE")
        try:
            results = await asyncio.wait_for(asyncio.gather(
                *(broker.publish(topic, event(i)) for i in range(20)), return_exceptions=True,
            ), WAIT)
        finally:
            await admin.execute_command("CLIENT", "UNPAUSE")
            await admin.aclose()
        assert all(isinstance(r, BrokerUnavailableError) for r in results), results
        assert client is broker.client
        await broker.publish(topic, event(100))  # and it works again


async def test_embedded_a_locked_file_fails_every_member(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    async with open_broker(f"embedded://{path}?busy_timeout=0.2") as broker:
        await broker.create_topic("t", 2)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another process holds the write lock
        try:
            results = await asyncio.wait_for(asyncio.gather(
                *(broker.publish("t", event(i)) for i in range(20)), return_exceptions=True,
            ), WAIT)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert all(isinstance(r, BrokerUnavailableError) for r in results), results
        await broker.publish("t", event(100))
        assert await consume(broker, "t", 1) == [100]


async def test_kafka_an_event_too_large_fails_alone(kafka_harness: Harness) -> None:
    topic = kafka_harness.topic()
    url = kafka_harness.url(max_request_size=200_000)  # type: ignore[call-arg]
    async with open_broker(url) as broker:
        await broker.create_topic(topic, 2)
        big = CloudEvent(type="test.event", source="/test", data={"i": 5, "p": "x" * 300_000})
        results = await asyncio.gather(
            *(broker.publish(topic, big if i == 5 else event(i)) for i in range(20)),
            return_exceptions=True,
        )
        assert isinstance(results[5], BrokerError) and "MessageSizeTooLarge" in str(results[5])
        assert [r for i, r in enumerate(results) if i != 5] == [None] * 19
        got = await consume(broker, topic, 19)
        assert sorted(got) == [i for i in range(20) if i != 5]
