"""bindings.mqtt3 / bindings.mqtt against the machine's Mosquitto (127.0.0.1:1883)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Callable

import aiomqtt
import pytest

from tests.servers import unavailable
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

HOST = os.environ.get("TETHER_TEST_MQTT", "127.0.0.1:1883")
URL = f"tcp://{HOST}"


def build(fields: dict[str, str], type_: str = "bindings.mqtt3") -> Binding:
    lines = "".join(f"    - name: {key}\n      value: \"{value}\"\n"
                    for key, value in fields.items())
    text = (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: sensors\n"
            f"spec:\n  type: {type_}\n  version: v1\n  metadata:\n{lines}")
    [loaded] = load_documents(text, "mqtt.yaml", Templates(app_id="app"))
    assert isinstance(loaded, Component)
    return BINDING_TYPES.build(loaded)


def client(identifier: str | None = None, clean: bool = True) -> aiomqtt.Client:
    host, _, port = HOST.rpartition(":")
    return aiomqtt.Client(host, int(port), identifier=identifier, clean_session=clean,
                          timeout=10)


@pytest.fixture
async def topic() -> AsyncIterator[str]:
    """A fresh topic (the broker must be there: skipped, or failed under CI, when not)."""
    try:
        async with client():
            pass
    except aiomqtt.MqttError as exc:
        unavailable(f"Mosquitto is not reachable at {HOST}: {exc}")
    yield f"tether-test/{uuid.uuid4().hex[:10]}"


async def receive(subscriber: aiomqtt.Client, count: int) -> list[aiomqtt.Message]:
    got: list[aiomqtt.Message] = []
    async with asyncio.timeout(30):  # a ceiling against a hang, not a timing assertion
        async for message in subscriber.messages:
            got.append(message)
            if len(got) == count:
                return got
    return got


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


async def session(consumer_id: str, topic: str) -> None:
    """Open the binding's persistent session (client id ``<consumerID>-consumer``) with its
    subscription, so what is published from now on waits for the binding's run()."""
    async with client(f"{consumer_id}-consumer", clean=False) as subscriber:
        await subscriber.subscribe(topic, qos=1)


async def publish(topic: str, *payloads: bytes) -> None:
    async with client() as publisher:
        for payload in payloads:
            await publisher.publish(topic, payload, qos=1)


async def test_create_publishes_to_the_topic_or_the_one_in_the_request(topic: str) -> None:
    binding = build({"url": URL, "topic": topic, "consumerID": uuid.uuid4().hex})
    output = binding.output
    assert output is not None and output.operations == {"create"}
    async with client() as subscriber:
        await subscriber.subscribe(f"{topic}/#", qos=1)
        await subscriber.subscribe(topic, qos=1)
        await output.start()
        try:
            response = await output.invoke(BindingRequest("create", b"21.5"))
            await output.invoke(BindingRequest("create", b"other", {"topic": f"{topic}/b"}))
        finally:
            await output.close()
        got = await receive(subscriber, 2)
    assert response.data is None
    assert sorted((m.topic.value, m.payload) for m in got) == [
        (topic, b"21.5"), (f"{topic}/b", b"other")]


async def test_retain_keeps_the_last_message_for_new_subscribers(topic: str) -> None:
    binding = build({"url": URL, "topic": topic, "consumerID": uuid.uuid4().hex,
                     "retain": "true"}, type_="bindings.mqtt")
    assert binding.output is not None
    await binding.output.start()
    try:
        await binding.output.invoke(BindingRequest("create", b"last"))
        async with client() as late:
            await late.subscribe(topic, qos=1)
            [message] = await receive(late, 1)
        assert (message.payload, message.retain) == (b"last", True)
        # an empty retained message clears the topic (the request's retain is read too)
        await binding.output.invoke(BindingRequest("create", b"", {"retain": "true"}))
    finally:
        await binding.output.close()


@pytest.mark.parametrize(("fields", "field"), [
    ({"topic": "a/+"}, "topic"),
    ({"qos": "3"}, "qos"),
    ({"retain": "yes please"}, "retain"),
])
async def test_bad_request_metadata_is_the_callers_mistake(
        topic: str, fields: dict[str, str], field: str) -> None:
    binding = build({"url": URL, "topic": topic, "consumerID": uuid.uuid4().hex})
    assert binding.output is not None
    await binding.output.start()
    try:
        with pytest.raises(BindingRequestError, match=f"metadata {field} "):
            await binding.output.invoke(BindingRequest("create", b"x", fields))
    finally:
        await binding.output.close()


async def test_input_acks_only_what_was_emitted(topic: str) -> None:
    consumer_id = f"tether-test-{uuid.uuid4().hex[:10]}"
    binding = build({"url": URL, "topic": topic, "consumerID": consumer_id})
    assert binding.input is not None and binding.input.exclusive is True
    await session(consumer_id, topic)
    await publish(topic, b"first")

    # emit fails: run() ends with the error and the message is not PUBACKed
    with pytest.raises(RuntimeError, match="could not be stored"):
        await collect(binding, 1, fail_on=lambda m: True)
    # so the broker sends it again to the same session
    [again] = await collect(binding, 1)
    assert again.data == b"first"
    assert again.key == topic
    assert again.metadata == {"topic": topic}
    # it was acked after its emit this time: the next run gets only what came since
    await publish(topic, b"second")
    assert [m.data for m in await collect(binding, 1)] == [b"second"]
    # the session goes with a clean connect
    async with client(f"{consumer_id}-consumer", clean=True):
        pass


async def test_a_shared_subscription_is_not_exclusive(topic: str) -> None:
    consumer_id = f"tether-test-{uuid.uuid4().hex[:10]}"
    shared = f"$share/workers/{topic}"
    binding = build({"url": URL, "topic": shared, "consumerID": consumer_id,
                     "cleanSession": "true"})
    assert binding.input is not None and binding.input.exclusive is False
    assert binding.output is not None
    source = binding.input
    got: list[InputMessage] = []
    arrived = asyncio.Event()

    async def emit(message: InputMessage) -> None:
        got.append(message)
        arrived.set()

    task = asyncio.create_task(source.run(emit))
    try:
        # the output publishes to the topic under the $share prefix; until the subscription
        # is in place messages go nowhere (clean session), so publish until one arrives
        await binding.output.start()
        async with asyncio.timeout(30):  # a ceiling, not a timing assertion
            while not arrived.is_set():
                await binding.output.invoke(BindingRequest("create", b"tick"))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), 0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await source.close()
        await binding.output.close()
    assert got[0].data == b"tick"
    assert got[0].metadata == {"topic": topic}


async def test_an_unreachable_broker_fails_start_and_run() -> None:
    binding = build({"url": "tcp://127.0.0.1:1", "topic": "t", "consumerID": "c"})
    assert binding.output is not None and binding.input is not None
    with pytest.raises(BindingFailedError, match="cannot reach the MQTT broker"):
        await binding.output.start()
    with pytest.raises(BindingFailedError, match="cannot reach the MQTT broker"):
        await binding.input.run(lambda message: asyncio.sleep(0))
    await binding.output.close()
    await binding.input.close()


@pytest.mark.parametrize(("fields", "field"), [
    ({"topic": "t", "consumerID": "c"}, "url"),
    ({"url": "http://h:1883", "topic": "t", "consumerID": "c"}, "url"),
    ({"url": "tcp://h:99999", "topic": "t", "consumerID": "c"}, "url"),
    ({"url": URL, "consumerID": "c"}, "topic"),
    ({"url": URL, "topic": "$share/onlygroup", "consumerID": "c"}, "topic"),
    ({"url": URL, "topic": "t"}, "consumerID"),
    ({"url": URL, "topic": "t", "consumerID": "c", "qos": "3"}, "qos"),
    ({"url": URL, "topic": "t", "consumerID": "c", "cleanSession": "nah"}, "cleanSession"),
    ({"url": URL, "topic": "t", "consumerID": "c", "backOffMaxRetries": "-2"},
     "backOffMaxRetries"),
])
def test_metadata_mistakes_name_the_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(BindingConfigError, match=f"metadata {field} ") as caught:
        build(fields)
    assert "'sensors'" in str(caught.value)
