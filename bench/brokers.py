"""Broker layer throughput: Tether against the raw client on the same server, in one run.

    .venv/bin/python bench/brokers.py [--events 100000] [--batch 1000] [--backends ...]
                                      [--singles 20000] [--callers 100]

For each backend: N CloudEvents with 200-byte JSON data are published in batches, then
consumed and acknowledged by one consumer group. Then (embedded, Kafka, Redis) the
"concurrent single publishes" case: ``--callers`` tasks each calling ``publish()`` one event
at a time, as a sidecar's concurrent requests do, with group commit on and off
(``TETHER_GROUP_COMMIT``): events/s and this process's CPU per event (its threads
included), and the ratios. Kafka runs on a tansu broker and Redis on a
redis-server, both started here on free ports; the raw baselines (aiokafka, redis-py) use
the same server, the same batch size and the same payload bytes. Consumer group joins are
left out of the consume time on both sides. Prints events/s and the Tether/raw ratio; record
the figures in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.servers import run_redis, run_tansu
from tether.brokers import Broker, open_broker
from tether.brokers.kafka.codec import to_kafka
from tether.brokers.redis.codec import to_redis_fields
from tether.platform.env import TETHER_GROUP_COMMIT
from tether.platform.events import CloudEvent

PARTITIONS = 4


@dataclass
class Result:
    name: str
    publish_s: float
    consume_s: float
    events: int

    @property
    def publish_rate(self) -> float:
        return self.events / self.publish_s

    @property
    def consume_rate(self) -> float:
        return self.events / self.consume_s

    @property
    def end_to_end_rate(self) -> float:
        return self.events / (self.publish_s + self.consume_s)


def make_events(count: int) -> list[CloudEvent]:
    filler = "x" * 186  # {"n":NNNNNN,"p":"xxx..."} is 200 bytes
    return [
        CloudEvent(
            type="bench.event", source="/bench", data={"n": i % 1_000_000, "p": filler},
            extensions={"partitionkey": f"key-{i % 64}"},
        )
        for i in range(count)
    ]


async def bench_tether(name: str, url: str, events: list[CloudEvent], batch: int) -> Result:
    topic, group = f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    broker: Broker = open_broker(url)
    async with broker:
        await broker.create_topic(topic, PARTITIONS)
        started = time.perf_counter()
        for i in range(0, len(events), batch):
            await broker.publish_batch(topic, events[i : i + batch])
        published = time.perf_counter()
        received = 0
        consume_started = 0.0
        async with broker.subscribe(topic, group) as subscription:
            async for delivery in subscription:
                if not received:
                    # the clock starts at the first delivery: the group join (seconds on
                    # tansu) is left out, as the raw consumer's start() waits it out too
                    consume_started = time.perf_counter()
                await delivery.ack()
                received += 1
                if received == len(events):
                    break
            consumed = time.perf_counter()
    return Result(name, published - started, consumed - consume_started, received)


async def bench_raw_kafka(address: str, events: list[CloudEvent], batch: int) -> Result:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    topic, group = f"raw-{uuid.uuid4().hex[:8]}", f"raw-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    await admin.close()
    records = [to_kafka(event) for event in events]  # payload bytes prepared outside the clock
    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all", linger_ms=5,
                                max_batch_size=1_048_576)
    await producer.start()
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        futures = [await producer.send(topic, value=v, key=k, headers=h)
                   for k, v, h in records[i : i + batch]]
        await asyncio.gather(*futures)
    published = time.perf_counter()
    await producer.stop()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=address, group_id=group, enable_auto_commit=False,
        auto_offset_reset="earliest", session_timeout_ms=6000, heartbeat_interval_ms=1000,
    )
    await consumer.start()  # with the topic given above, start() waits for the group join
    received = 0
    consume_started = time.perf_counter()
    while received < len(records):
        batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
        received += sum(len(messages) for messages in batches.values())
        if batches:
            await consumer.commit()
    consumed = time.perf_counter()
    await consumer.stop()
    return Result("kafka raw aiokafka", published - started, consumed - consume_started, received)


async def bench_raw_redis(address: str, events: list[CloudEvent], batch: int) -> Result:
    import redis.asyncio as redis

    host, port = address.split(":")
    client = redis.Redis(host=host, port=int(port))
    stream, group = f"raw-{uuid.uuid4().hex[:8]}", "raw"
    entries = [to_redis_fields(event) for event in events]
    started = time.perf_counter()
    for i in range(0, len(entries), batch):
        pipe = client.pipeline(transaction=False)
        for fields in entries[i : i + batch]:
            pipe.xadd(stream, fields)  # type: ignore[arg-type]
        await pipe.execute()
    published = time.perf_counter()
    await client.xgroup_create(stream, group, id="0")
    received = 0
    consume_started = time.perf_counter()
    while received < len(entries):
        reply = await client.xreadgroup(group, "c1", {stream: ">"}, count=batch, block=1000)
        for _, messages in reply:
            ids = [message_id for message_id, _ in messages]
            received += len(ids)
            await client.xack(stream, group, *ids)
    consumed = time.perf_counter()
    await client.aclose()
    return Result("redis raw redis-py", published - started, consumed - consume_started, received)


@dataclass
class Singles:
    rate: float
    cpu_us: float


async def bench_singles(url: str, events: list[CloudEvent], callers: int, grouping: bool
                        ) -> Singles:
    """``callers`` tasks publishing ``events`` one ``publish()`` at a time."""
    before = os.environ.get(TETHER_GROUP_COMMIT)
    os.environ[TETHER_GROUP_COMMIT] = "on" if grouping else "off"
    try:
        broker: Broker = open_broker(url)  # reads the switch as it is built
    finally:
        if before is None:
            del os.environ[TETHER_GROUP_COMMIT]
        else:
            os.environ[TETHER_GROUP_COMMIT] = before
    topic = f"singles-{uuid.uuid4().hex[:8]}"
    async with broker:
        await broker.create_topic(topic, PARTITIONS)
        await broker.publish(topic, events[0])  # connections and metadata warm
        queue = iter(events)

        async def caller() -> None:
            for event in queue:
                await broker.publish(topic, event)

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(caller() for _ in range(callers)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return Singles(len(events) / elapsed, cpu / len(events) * 1e6)


async def compare_singles(name: str, url: str, events: list[CloudEvent], callers: int) -> None:
    alone = await bench_singles(url, events, callers, grouping=False)
    grouped = await bench_singles(url, events, callers, grouping=True)
    rate, cpu = grouped.rate / alone.rate, grouped.cpu_us / alone.cpu_us
    print(f"{name + ' singles':<24} grouped {grouped.rate:>9,.0f}/s {grouped.cpu_us:>6.0f} µs CPU"
          f"/event; alone {alone.rate:>9,.0f}/s {alone.cpu_us:>6.0f} µs; grouped/alone: "
          f"rate {rate:.2f}x, CPU per event {cpu:.2f}x", flush=True)


def report(result: Result, baseline: Result | None = None) -> None:
    line = (
        f"{result.name:<24} publish {result.publish_rate:>9,.0f}/s  "
        f"consume {result.consume_rate:>9,.0f}/s  end-to-end {result.end_to_end_rate:>9,.0f}/s"
    )
    if baseline is not None:
        line += f"  ratio {result.end_to_end_rate / baseline.end_to_end_rate:.0%} of raw"
        line += (f" (publish {result.publish_rate / baseline.publish_rate:.0%}, "
                 f"consume {result.consume_rate / baseline.consume_rate:.0%})")
    print(line, flush=True)


@contextlib.contextmanager
def temporary_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="tether-bench-") as folder:
        yield str(Path(folder) / "broker.db")


async def run(backends: list[str], count: int, batch: int, singles: int, callers: int) -> None:
    events = make_events(max(count, singles))
    single_events = events[:singles]
    events = events[:count]
    size = len(events[0].data_bytes() or b"")
    print(f"{count:,} CloudEvents, {size}-byte JSON data, batches of {batch}, "
          f"{PARTITIONS} partitions; {singles:,} single publishes from {callers} callers\n",
          flush=True)
    runs: dict[str, Callable[[], Awaitable[None]]] = {}

    async def memory() -> None:
        report(await bench_tether("memory tether", "memory://", events, batch))

    async def embedded() -> None:
        with temporary_file() as path:
            report(await bench_tether("embedded tether", f"embedded://{path}", events, batch))
            if singles:
                await compare_singles("embedded", f"embedded://{path}", single_events, callers)

    async def kafka() -> None:
        with run_tansu() as address:
            raw = await bench_raw_kafka(address, events, batch)
            report(raw)
            report(await bench_tether("kafka tether", f"kafka://{address}", events, batch), raw)
            if singles:
                await compare_singles("kafka", f"kafka://{address}", single_events, callers)

    async def redis_backend() -> None:
        with run_redis() as address:
            raw = await bench_raw_redis(address, events, batch)
            report(raw)
            report(await bench_tether("redis tether", f"redis://{address}/0", events, batch), raw)
            if singles:
                await compare_singles("redis", f"redis://{address}/0", single_events, callers)

    runs.update(memory=memory, embedded=embedded, kafka=kafka, redis=redis_backend)
    for name in backends:
        await runs[name]()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--backends", nargs="+", default=["memory", "embedded", "kafka", "redis"],
                        choices=["memory", "embedded", "kafka", "redis"])
    parser.add_argument("--singles", type=int, default=20_000,
                        help="events of the concurrent single publishes case (0: skip it)")
    parser.add_argument("--callers", type=int, default=100,
                        help="concurrent publishers in that case")
    args = parser.parse_args()
    asyncio.run(run(args.backends, args.events, args.batch, args.singles, args.callers))


if __name__ == "__main__":
    main()
