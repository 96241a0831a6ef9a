"""Kafka-specific behaviour the shared contract suite does not cover (tansu broker)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import subprocess
import sys
from collections import defaultdict
from typing import Literal

import pytest

from tests.brokers.harness_kafka import KafkaHarness
from tests.brokers.helpers import event, nothing_more, take
from tests.servers import free_port, run_tansu
from tether.brokers import (
    BrokerConfigError,
    BrokerError,
    BrokerUnavailableError,
    SubscribeOptions,
    dead_letter_topic_for,
    open_broker,
)
from tether.brokers.kafka.codec import to_kafka
from tether.brokers.subscription import MALFORMED_EVENT_TYPE
from tether.platform.events import CloudEvent

aiokafka = pytest.importorskip("aiokafka")
from tether.brokers.kafka import KafkaBroker, KafkaSubscription, parse_url  # noqa: E402

WAIT = 60.0  # ceiling for group joins (tansu: about session_timeout / 2 each)


async def partitions_of(address: str, topic: str) -> set[int]:
    """The topic's partitions as the cluster reports them (to an outside client)."""
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    try:
        partitions: set[int] = await producer.partitions_for(topic)
        return partitions
    finally:
        await producer.stop()


# --- URL and import (no server) -----------------------------------------------------------
def test_url_gives_settings_and_hides_the_password() -> None:
    settings = parse_url(
        "kafka://app:s3cret@k1:9093,k2?partitions=8&session_timeout_ms=6000"
        "&heartbeat_interval_ms=1000&linger_ms=2&security_protocol=SASL_SSL"
        "&sasl_mechanism=SCRAM-SHA-512&client_id=orders"
    )
    assert settings.bootstrap_servers == ("k1:9093", "k2:9092")
    assert settings.partitions == 8 and settings.linger_ms == 2
    assert settings.session_timeout_ms == 6000 and settings.heartbeat_interval_ms == 1000
    assert settings.username == "app" and settings.password == "s3cret"
    assert settings.client_options()["sasl_mechanism"] == "SCRAM-SHA-512"
    broker = KafkaBroker(settings)
    assert "s3cret" not in broker.url and "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    "url",
    [
        "kafka://k1:9092?partitons=3",  # typo: unknown options are refused
        "kafka://k1:9092?partitions=many",
        "kafka://k1:9092?partitions=0",
        "kafka://k1:9092?session_timeout_ms=1000&heartbeat_interval_ms=1000",
        "kafka://k1:9092?security_protocol=TLS",
        "kafka://",
    ],
)
def test_bad_urls_are_config_errors(url: str) -> None:
    with pytest.raises(BrokerConfigError):
        open_broker(url)


def test_missing_aiokafka_asks_for_the_extra() -> None:
    script = (
        "import sys; sys.modules['aiokafka'] = None\n"
        "from tether.brokers import open_broker, MissingExtraError\n"
        "try:\n    open_broker('kafka://127.0.0.1:9092')\n"
        "except MissingExtraError as exc:\n    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert "pip install 'tether[kafka]'" in out.stdout


# --- connecting ---------------------------------------------------------------------------
async def test_unreachable_bootstrap_server_is_unavailable() -> None:
    broker = open_broker(f"kafka://127.0.0.1:{free_port()}?connect_timeout_ms=2000")
    with pytest.raises(BrokerUnavailableError, match="cannot reach Kafka"):
        await asyncio.wait_for(broker.connect(), 15)  # a hang guard, not a timing assertion


async def test_a_server_that_never_answers_is_unavailable_after_connect_timeout() -> None:
    """A port that accepts connections but never speaks Kafka (a wedged proxy, say)."""
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        broker = open_broker(f"kafka://127.0.0.1:{port}?connect_timeout_ms=500")
        with pytest.raises(BrokerUnavailableError):
            await asyncio.wait_for(broker.connect(), 15)
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


# --- topics and keys ----------------------------------------------------------------------
async def test_unknown_topics_are_created_with_the_url_partition_count(
    kafka_harness: KafkaHarness,
) -> None:
    topic = kafka_harness.topic()
    async with open_broker(kafka_harness.url(partitions=3)) as broker:
        await broker.publish(topic, event(0))
    assert await partitions_of(kafka_harness.address, topic) == {0, 1, 2}


async def test_keys_land_on_one_partition_in_order(kafka_harness: KafkaHarness) -> None:
    topic, group = kafka_harness.topic(), kafka_harness.group()
    keys = [f"key-{k}" for k in range(6)]
    sent = [event(i, key=keys[i % len(keys)]) for i in range(300)]
    async with kafka_harness.broker() as broker:
        await broker.create_topic(topic, 4)
        await broker.publish_batch(topic, sent[:200])
        for one in sent[200:250]:  # single publishes must pick the same partition as batches
            await broker.publish(topic, one)
        # ... and so must any other Kafka client using its default partitioner
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka_harness.address)
        await producer.start()
        try:
            for one in sent[250:]:
                key, value, headers = to_kafka(one)
                await producer.send_and_wait(topic, value, key=key, headers=headers)
        finally:
            await producer.stop()
        async with broker.subscribe(topic, group) as subscription:
            received = await take(subscription, len(sent))
    partitions: dict[str, set[int]] = defaultdict(set)
    order: dict[str, list[int]] = defaultdict(list)
    for delivery in received:
        assert delivery.key is not None
        partitions[delivery.key].add(delivery.partition)
        order[delivery.key].append(delivery.event.data["i"])
    assert all(len(p) == 1 for p in partitions.values()), partitions
    assert len(set().union(*partitions.values())) > 1, "every key hashed to one partition"
    for key in keys:
        assert order[key] == sorted(order[key]) and len(order[key]) == len(sent) // len(keys)


# --- rebalancing --------------------------------------------------------------------------
async def wait_until(condition: object, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():  # type: ignore[operator]
        if loop.time() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_a_joining_member_makes_the_first_commit_on_revoke(
    kafka_harness: KafkaHarness,
) -> None:
    """Periodic commits are off for the first member, so only the commit made when its
    partitions are revoked can keep the second member from seeing acked events again."""
    topic, group = kafka_harness.topic(), kafka_harness.group()
    sent = [event(i, key=f"k{i}") for i in range(40)]
    never = 3_600_000
    async with open_broker(kafka_harness.url(commit_interval_ms=never)) as one, \
            kafka_harness.broker() as two:
        assert isinstance(one, KafkaBroker)
        await one.create_topic(topic, 4)
        await one.publish_batch(topic, sent)
        first = one.subscribe(topic, group)
        await first.start()
        got = await take(first, len(sent), ack=False)
        done, in_flight = got[:30], got[30:]
        for delivery in done:
            await delivery.ack()

        async def finish_in_flight_during_the_rebalance() -> None:
            await asyncio.sleep(1.0)
            for delivery in in_flight:
                await delivery.ack()

        finisher = asyncio.create_task(finish_in_flight_during_the_rebalance())
        second = two.subscribe(topic, group)
        await second.start()
        assert isinstance(first, KafkaSubscription) and isinstance(second, KafkaSubscription)
        await wait_until(
            lambda: second.assigned_partitions
            and len(first.assigned_partitions) + len(second.assigned_partitions) == 4,
            "the partitions to be split between the two members",
        )
        await finisher
        await asyncio.gather(nothing_more(first, 1.5), nothing_more(second, 1.5))
        committed = {
            p: await _committed(kafka_harness.address, group, topic, p) for p in range(4)
        }
        await asyncio.gather(first.close(), second.close())
    per_partition: dict[int, int] = defaultdict(int)
    for delivery in got:
        per_partition[delivery.partition] += 1
    assert committed == {p: per_partition.get(p) for p in range(4)}


async def _committed(address: str, group: str, topic: str, partition: int) -> int | None:
    """The group's committed offset, read by an outsider that does not join the group."""
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=address, group_id=group)
    await consumer.start()
    try:
        tp = aiokafka.TopicPartition(topic, partition)
        value: int | None = await consumer.committed(tp)
        return value
    finally:
        await consumer.stop()


# --- dead letters and nacks ---------------------------------------------------------------
async def test_undecodable_records_become_malformed_dead_letters_even_after_a_failure(
    kafka_harness: KafkaHarness,
) -> None:
    topic, group = kafka_harness.topic(), kafka_harness.group()
    good = event(1)
    bad_json = [
        ("ce_specversion", b"1.0"), ("ce_id", b"x1"), ("ce_source", b"/s"),
        ("ce_type", b"t"), ("content-type", b"application/json"),
    ]
    async with kafka_harness.broker() as broker:
        await broker.create_topic(topic, 1)
        await kafka_harness.inject_raw(topic, b"\xff\xfe not an event")
        producer = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka_harness.address)
        await producer.start()
        try:  # CloudEvent headers, but the JSON body is broken
            await producer.send_and_wait(topic, b"{broken", headers=bad_json)
        finally:
            await producer.stop()
        await broker.publish(topic, good)
        assert isinstance(broker, KafkaBroker)
        real_publish, failures = broker._publish_dead_letter, []

        async def flaky_publish(dlq_topic: str, dead: CloudEvent) -> None:
            if not failures:  # the first dead-letter publish fails: it must be retried
                failures.append(dead)
                raise BrokerUnavailableError("simulated outage")
            await real_publish(dlq_topic, dead)

        broker._publish_dead_letter = flaky_publish  # type: ignore[method-assign]
        async with broker.subscribe(topic, group) as subscription:
            [delivery] = await take(subscription, 1)
        async with broker.subscribe(dead_letter_topic_for(topic), kafka_harness.group()) as dlq:
            dead = [d.event for d in await take(dlq, 2)]
            await nothing_more(dlq, 0.5)
        assert len(failures) == 1
        async with broker.subscribe(topic, group) as again:  # the bad records were committed
            await nothing_more(again, 1.0)
    assert delivery.event.id == good.id
    assert {d.type for d in dead} == {MALFORMED_EVENT_TYPE}
    assert {d.data for d in dead} == {b"\xff\xfe not an event", b"{broken"}
    assert all(d.extensions["deadlettertopic"] == topic for d in dead)
    assert any("JSON" in d.extensions["deadletterreason"] for d in dead)


async def test_a_nacked_key_waits_while_its_partition_flows(kafka_harness: KafkaHarness) -> None:
    """One partition: a nacked key holds its own successors back, not the other keys, and
    the group's commit catches up once the nacked event is finally acked."""
    topic, group = kafka_harness.topic(), kafka_harness.group()
    slow = [event(i, key="slow") for i in range(3)]
    others = [event(i, key=f"o{i}") for i in range(3, 103)]
    async with kafka_harness.broker() as broker:
        await broker.create_topic(topic, 1)
        await broker.publish_batch(topic, [slow[0], *others[:50], *slow[1:], *others[50:]])
        async with broker.subscribe(topic, group) as subscription:
            [first] = await take(subscription, 1, ack=False)
            assert first.event.id == slow[0].id
            await first.nack(delay=3.0)
            rest = await take(subscription, len(others) + len(slow))
        async with broker.subscribe(topic, group) as again:
            await nothing_more(again, 1.0)
    later = [d for d in rest if d.key == "slow"]
    assert [d.event.id for d in later] == [e.id for e in slow]
    assert all(d.key != "slow" for d in rest[: len(others)]), "other keys waited for the nack"
    assert later[0].delivery_count == 2


# --- a broker restart ---------------------------------------------------------------------
@pytest.mark.parametrize("start_from", [None, "latest"])
async def test_publishing_and_the_group_recover_when_the_broker_restarts(
    caplog: pytest.LogCaptureFixture, start_from: Literal["latest"] | None,
) -> None:
    """tansu's memory engine loses every topic, record and group on restart (a real Kafka
    keeps them): the broker must re-create the topic, the member re-join from the new log's
    start (not commit its old offsets into the new group, which would skip new events), and
    every event published after the restart be delivered and acked, in a short log.

    Periodic commits are off, so the acks of the first events are still uncommitted when the
    broker restarts, as some always are under load. A group that starts at the "latest"
    offset must not apply it when it re-joins: it would skip what was published since."""
    port = free_port()
    topic, group, partitions = "restarted", "restarted-group", 3
    delivered: list[int] = []
    with contextlib.ExitStack() as servers:
        address = servers.enter_context(run_tansu(port=port))
        url = KafkaHarness(address).url(partitions=partitions, commit_interval_ms=3_600_000)
        async with open_broker(url) as broker:
            subscription = broker.subscribe(topic, group, SubscribeOptions(start_from=start_from))
            await subscription.start()
            assert isinstance(subscription, KafkaSubscription)
            await wait_until(lambda: subscription.assigned_partitions, "the first join")

            async def consume() -> None:
                async for delivery in subscription:
                    delivered.append(delivery.event.data["i"])
                    await delivery.ack()

            consumer = asyncio.create_task(consume())
            await broker.publish_batch(topic, [event(i, key=f"k{i}") for i in range(20)])
            await wait_until(lambda: len(delivered) == 20, "the events before the restart")

            servers.close()  # the broker stops ...
            caplog.clear()
            servers.enter_context(run_tansu(port=port))  # ... and starts again, empty
            accepted = []
            for i in range(100, 130):  # a publish may fail while the broker is away
                with contextlib.suppress(BrokerError):
                    await broker.publish(topic, event(i, key=f"k{i}"))
                    accepted.append(i)
            await wait_until(lambda: set(accepted) <= set(delivered),
                             "every event accepted after the restart")
            consumer.cancel()
            await subscription.close()
            committed = {p: await _committed(address, group, topic, p) for p in range(partitions)}
            ends = await _log_ends(address, topic, partitions)
    assert len(accepted) >= 25, "publishing did not recover"
    assert committed == ends, "what was delivered after the restart was not all acked"
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(noisy) <= 20, "\n".join(f"{r.name}: {r.getMessage()}" for r in noisy)


async def _log_ends(address: str, topic: str, partitions: int) -> dict[int, int | None]:
    """Each partition's end offset as seen by fetching it to the end (tansu's ListOffsets
    LATEST is wrong); None for an empty partition, as an uncommitted group reads."""
    consumer = aiokafka.AIOKafkaConsumer(bootstrap_servers=address, auto_offset_reset="earliest")
    await consumer.start()
    try:
        tps = [aiokafka.TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends: dict[int, int | None] = {p: None for p in range(partitions)}
        while True:
            batches = await consumer.getmany(timeout_ms=1500)
            if not batches:
                return ends
            for tp, messages in batches.items():
                ends[tp.partition] = messages[-1].offset + 1
    finally:
        await consumer.stop()
