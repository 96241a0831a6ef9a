"""Kafka binary mode and the Redis Streams field map: the wire layout, round trips in memory,
and round trips through a real tansu broker and a real redis-server."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.platform.test_event import TRACE, sample_events
from tether.brokers.kafka.codec import from_kafka, to_kafka
from tether.brokers.redis.codec import from_redis_fields, to_redis_fields
from tether.platform.events import CloudEvent, InvalidCloudEventError

SAMPLES = sample_events()
KAFKA_HEADERS = [(b"ce_specversion", b"1.0"), (b"ce_id", b"1"), (b"ce_source", b"/s"),
                 (b"ce_type", b"t")]


def kafka_headers(*extra: tuple[str, bytes]) -> list[tuple[str, bytes]]:
    return [(name.decode(), value) for name, value in KAFKA_HEADERS] + list(extra)


# --- Kafka, in memory -----------------------------------------------------------------------
@pytest.mark.parametrize("name", SAMPLES)
def test_kafka_round_trip(name: str) -> None:
    event = SAMPLES[name]
    _, value, headers = to_kafka(event)
    assert from_kafka(value, headers) == event


def test_kafka_layout() -> None:
    event = SAMPLES["all-attributes-json"]
    key, value, headers = to_kafka(event)
    assert key == b"order-17"  # the record key is the partitionkey extension
    assert value == event.data_bytes()
    assert dict(headers) == {
        "ce_specversion": b"1.0", "ce_id": b"A234-1234-1234", "ce_source": b"/orders/eu",
        "ce_type": b"com.example.order.created", "ce_subject": b"order/17",
        "ce_time": b"2024-05-06T07:08:09.123456Z",
        "ce_dataschema": b"https://example.com/order.json",
        "ce_traceparent": TRACE["traceparent"].encode(),
        "ce_tracestate": TRACE["tracestate"].encode(),
        "ce_partitionkey": b"order-17", "ce_tenant": b"acme", "ce_attempt": b"2",
        "content-type": b"application/json",
    }
    assert len(headers) == len(dict(headers))  # no duplicate header
    unkeyed_key, no_value, _ = to_kafka(CloudEvent(type="t", source="s"))
    assert (unkeyed_key, no_value) == (None, None)
    # Kafka headers carry UTF-8 as is (no percent-encoding, unlike HTTP)
    unsafe_headers = dict(to_kafka(SAMPLES["header-unsafe-values"])[2])
    assert unsafe_headers["ce_subject"] == "naïve café ☕".encode()


def test_kafka_header_names_are_case_insensitive() -> None:
    headers = [("CE_SPECVERSION", b"1.0"), ("Ce_Id", b"1"), ("ce_source", b"/s"),
               ("ce_type", b"t"), ("ce_PartitionKey", b"k")]
    assert from_kafka(None, headers).partitionkey == "k"


@pytest.mark.parametrize(
    ("value", "headers", "message"),
    [
        (None, kafka_headers()[1:], "'specversion'"),
        (None, kafka_headers()[:1] + kafka_headers()[2:], "'id'"),
        (None, [(n, v) for n, v in kafka_headers() if n != "ce_source"], "'source'"),
        (None, [(n, v) for n, v in kafka_headers() if n != "ce_type"], "'type'"),
        (None, kafka_headers(("ce_time", b"soon")), "RFC 3339"),
        (None, kafka_headers(("ce_subject", b"\xff")), "not UTF-8"),
        (None, kafka_headers(("ce_Bad-Name", b"x")), "lower-case"),
        (b"{", kafka_headers(("content-type", b"application/json")), "not valid JSON"),
        (None, [(n, b"0.3" if n == "ce_specversion" else v) for n, v in kafka_headers()],
         "unsupported specversion"),
        (b"raw bytes", [], "'specversion'"),  # a foreign producer's record
    ],
)
def test_kafka_invalid(value: bytes | None, headers: list[tuple[str, bytes]], message: str) -> None:
    with pytest.raises(InvalidCloudEventError, match=message):
        from_kafka(value, headers)


# --- Redis, in memory -----------------------------------------------------------------------
def as_stored(fields: dict[str | bytes, bytes | str]) -> dict[bytes, bytes]:
    """What XRANGE / XREADGROUP return without decode_responses: bytes both sides."""
    return {
        (name.encode() if isinstance(name, str) else name):
        (value.encode() if isinstance(value, str) else value)
        for name, value in fields.items()
    }


@pytest.mark.parametrize("name", SAMPLES)
def test_redis_round_trip(name: str) -> None:
    event = SAMPLES[name]
    assert from_redis_fields(as_stored(to_redis_fields(event))) == event


def test_redis_layout() -> None:
    event = SAMPLES["binary"]
    assert as_stored(to_redis_fields(event)) == {
        b"ce_specversion": b"1.0", b"ce_id": event.id.encode(), b"ce_source": b"s",
        b"ce_type": b"t", b"ce_partitionkey": b"bin",
        b"content-type": b"application/octet-stream", b"data": bytes(range(256)),
    }
    assert b"data" not in as_stored(to_redis_fields(SAMPLES["no-data"]))


def test_redis_invalid() -> None:
    fields = as_stored(to_redis_fields(SAMPLES["text"]))
    with pytest.raises(InvalidCloudEventError, match="'type'"):
        from_redis_fields({k: v for k, v in fields.items() if k != b"ce_type"})
    with pytest.raises(InvalidCloudEventError, match="not UTF-8"):
        from_redis_fields({**fields, b"ce_subject": b"\xff"})
    with pytest.raises(InvalidCloudEventError, match="not valid UTF-8"):
        from_redis_fields({**fields, b"data": b"\xff"})  # text/plain data


# --- through real servers -------------------------------------------------------------------
async def test_kafka_round_trip_through_tansu(kafka_address: str) -> None:
    aiokafka = pytest.importorskip("aiokafka")
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.structs import TopicPartition

    topic = f"ce-{uuid.uuid4().hex[:10]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_address)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    events = list(SAMPLES.values())
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka_address, acks="all")
    await producer.start()
    try:
        for event in events:
            key, value, headers = to_kafka(event)
            if key is None and value is None:
                # send() refuses a record with neither key nor value (an event without data
                # and partitionkey); a hand-made batch carries it, as tether.brokers.kafka does
                batch = producer.create_batch()
                batch.append(key=None, value=None, timestamp=None, headers=headers)
                await (await producer.send_batch(batch, topic, partition=0))
            else:
                await producer.send_and_wait(topic, value=value, key=key, headers=headers)
    finally:
        await producer.stop()

    consumer = aiokafka.AIOKafkaConsumer(
        bootstrap_servers=kafka_address, enable_auto_commit=False, auto_offset_reset="earliest",
    )
    await consumer.start()
    records: list[Any] = []
    try:
        consumer.assign([TopicPartition(topic, 0)])
        await consumer.seek_to_beginning()
        for _ in range(50):  # bounded: fails below rather than hanging
            batches = await consumer.getmany(timeout_ms=200)
            records.extend(record for batch in batches.values() for record in batch)
            if len(records) >= len(events):
                break
    finally:
        await consumer.stop()
    assert [from_kafka(r.value, r.headers) for r in records] == events
    assert [r.key for r in records] == [
        e.partitionkey.encode() if e.partitionkey else None for e in events
    ]


async def test_redis_round_trip_through_redis_server(redis_address: str) -> None:
    redis = pytest.importorskip("redis.asyncio")
    host, port = redis_address.split(":")
    client = redis.Redis(host=host, port=int(port))
    stream = f"ce-{uuid.uuid4().hex[:10]}"
    events = list(SAMPLES.values())
    try:
        for event in events:
            await client.xadd(stream, to_redis_fields(event))
        entries = await client.xrange(stream)
        await client.delete(stream)
    finally:
        await client.aclose()
    assert [from_redis_fields(fields) for _, fields in entries] == events

