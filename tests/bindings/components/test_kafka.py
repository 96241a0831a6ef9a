"""bindings.kafka against a real Kafka-compatible broker (tansu, the kafka_address fixture)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tether.platform.bindings.binding import (
    Binding,
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    InputMessage,
)
from tether.platform.bindings.registry import BINDING_TYPES, BindingConfigError
from tether.platform.components.loader import Templates, load_documents
from tether.platform.components.model import Component


def component(fields: dict[str, str], name: str = "events") -> Component:
    lines = "".join(f"    - name: {key}\n      value: \"{value}\"\n"
                    for key, value in fields.items())
    text = (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
            f"spec:\n  type: bindings.kafka\n  version: v1\n  metadata:\n{lines}")
    [loaded] = load_documents(text, "kafka.yaml", Templates(app_id="app"))
    assert isinstance(loaded, Component)
    return loaded


def build(fields: dict[str, str]) -> Binding:
    return BINDING_TYPES.build(component(fields))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


#: short group timeouts: tansu holds a join for half the session timeout
GROUP = {"sessionTimeout": "6s", "heartbeatInterval": "2s"}


async def read_all(address: str, topic: str, count: int) -> list[object]:
    """``count`` records of ``topic`` read without a group (no join to wait for)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=address, enable_auto_commit=False,
                                fetch_max_wait_ms=50)
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        while not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        await consumer.seek_to_beginning()
        records: list[object] = []
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=1000)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def produce(address: str, topic: str, *values: bytes, key: bytes = b"k") -> None:
    producer = AIOKafkaProducer(bootstrap_servers=address, enable_idempotence=False)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(topic, value, key=key, headers=[("origin", b"test")])
    finally:
        await producer.stop()


async def collect(binding: Binding, count: int,
                  fail_on: Callable[[InputMessage], bool] | None = None,
                  ) -> list[InputMessage]:
    """Run the input until ``count`` messages were emitted; an emit for which ``fail_on``
    answers True raises instead, which ends run() with that error."""
    source = binding.input
    assert source is not None
    got: list[InputMessage] = []
    done = asyncio.Event()

    async def emit(message: InputMessage) -> None:
        if fail_on is not None and fail_on(message):
            raise RuntimeError("the message could not be stored")
        got.append(message)
        if len(got) >= count:
            done.set()

    task = asyncio.create_task(source.run(emit))
    waiter = asyncio.create_task(done.wait())
    try:
        # a ceiling against a hang (a message that never comes), not a timing assertion
        await asyncio.wait({task, waiter}, timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # raises what run() raised
        assert done.is_set(), f"only {len(got)} of {count} messages arrived"
    finally:
        waiter.cancel()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.close()
    return got


async def test_create_publishes_the_data_with_key_and_headers(kafka_address: str) -> None:
    topic = unique("out")
    binding = build({"brokers": kafka_address, "publishTopic": topic})
    output = binding.output
    assert output is not None and binding.input is None
    assert output.operations == {"create"}
    await output.start()
    try:
        response = await output.invoke(BindingRequest(
            "create", b'{"order":1}', {"key": "order-1", "traceparent": "00-abc"}))
        await output.invoke(BindingRequest("create", b"second", {"partitionKey": "order-2"}))
    finally:
        await output.close()
    assert response.data is None  # Dapr answers 204
    # the topic may have several partitions: no order between the two keys
    records = {r.key: r for r in await read_all(kafka_address, topic, 2)}  # type: ignore[attr-defined]
    assert sorted(records) == [b"order-1", b"order-2"]
    assert records[b"order-1"].value == b'{"order":1}'
    assert records[b"order-1"].headers == (("traceparent", b"00-abc"),)
    assert records[b"order-2"].value == b"second"


async def test_a_record_over_max_message_bytes_is_the_callers_mistake(
        kafka_address: str) -> None:
    binding = build({"brokers": kafka_address, "publishTopic": unique("big"),
                     "maxMessageBytes": "1024"})
    assert binding.output is not None
    await binding.output.start()
    try:
        with pytest.raises(BindingRequestError, match="maxMessageBytes"):
            await binding.output.invoke(BindingRequest("create", b"x" * 4096))
    finally:
        await binding.output.close()


async def test_an_unreachable_broker_fails_start() -> None:
    binding = build({"brokers": "127.0.0.1:1", "publishTopic": "t"})
    assert binding.output is not None
    with pytest.raises(BindingFailedError, match=r"127\.0\.0\.1:1"):
        await binding.output.start()
    await binding.output.close()


async def test_input_commits_only_what_was_emitted(kafka_address: str) -> None:
    topic = unique("in")
    binding = build({"brokers": kafka_address, "topics": topic, **GROUP,
                     "consumerGroup": unique("group"), "initialOffset": "oldest"})
    assert binding.output is None and binding.input is not None
    assert binding.input.exclusive is False
    await produce(kafka_address, topic, b"first", b"second")

    # emit fails: run() ends with the error and nothing is committed
    with pytest.raises(RuntimeError, match="could not be stored"):
        await collect(binding, 2, fail_on=lambda m: m.data == b"first")
    # so the next run reads "first" again, with Dapr's metadata
    got = await collect(binding, 2)
    assert [m.data for m in got] == [b"first", b"second"]
    first = got[0]
    assert first.key == "k"
    assert first.metadata["__key"] == "k"
    assert first.metadata["__topic"] == topic
    assert first.metadata["__partition"] == "0"
    assert first.metadata["__offset"] == "0"
    assert first.metadata["origin"] == "test"
    assert int(first.metadata["__timestamp"]) > 0
    # both were committed after their emit: a new run starts after them
    await produce(kafka_address, topic, b"third")
    assert [m.data for m in await collect(binding, 1)] == [b"third"]


async def test_close_is_safe_before_run(kafka_address: str) -> None:
    binding = build({"brokers": kafka_address, "topics": "t", "consumerGroup": "g",
                     "publishTopic": "t"})
    assert binding.input is not None and binding.output is not None
    await binding.input.close()
    await binding.output.close()


@pytest.mark.parametrize(("fields", "field"), [
    ({}, "brokers"),
    ({"brokers": "localhost"}, "brokers"),
    ({"brokers": "b:9092", "topics": "t"}, "consumerGroup"),
    ({"brokers": "b:9092"}, "publishTopic"),
    ({"brokers": "b:9092", "publishTopic": "t", "authType": "password"}, "authType"),
    ({"brokers": "b:9092", "publishTopic": "t", "authRequired": "true"}, "authRequired"),
    ({"brokers": "b:9092", "publishTopic": "t", "initialOffset": "latest"}, "initialOffset"),
    ({"brokers": "b:9092", "publishTopic": "t", "maxMessageBytes": "0"}, "maxMessageBytes"),
    ({"brokers": "b:9092", "publishTopic": "t", "sessionTimeout": "2s",
      "heartbeatInterval": "3s"}, "heartbeatInterval"),
    ({"brokers": "b:9092", "topics": "t", "consumerGroup": "g", "direction": "output"},
     "publishTopic"),
    ({"brokers": "b:9092", "publishTopic": "t", "direction": "input"}, "topics"),
])
def test_metadata_mistakes_name_the_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(BindingConfigError, match=f"metadata {field} ") as caught:
        build(fields)
    assert "'events'" in str(caught.value)


def test_direction_keeps_one_side() -> None:
    binding = build({"brokers": "b:9092", "topics": "t", "consumerGroup": "g",
                     "publishTopic": "t", "direction": "input"})
    assert binding.output is None and binding.input is not None

