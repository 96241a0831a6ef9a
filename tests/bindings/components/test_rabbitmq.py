"""bindings.rabbitmq against the machine's RabbitMQ (127.0.0.1:5672, guest/guest)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from tests.bindings.conftest import RABBITMQ_URL as URL
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


def build(fields: dict[str, str], name: str = "jobs") -> Binding:
    lines = "".join(f"    - name: {key}\n      value: \"{value}\"\n"
                    for key, value in fields.items())
    text = (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
            f"spec:\n  type: bindings.rabbitmq\n  version: v1\n  metadata:\n{lines}")
    [loaded] = load_documents(text, "rabbitmq.yaml", Templates(app_id="app"))
    assert isinstance(loaded, Component)
    return BINDING_TYPES.build(loaded)


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


async def test_create_publishes_a_persistent_message_with_headers(
        channel: AbstractChannel, queue: str) -> None:
    binding = build({"host": URL, "queueName": queue, "durable": "true"})
    output = binding.output
    assert output is not None and output.operations == {"create"}
    await output.start()
    try:
        response = await output.invoke(BindingRequest(
            "create", b'{"job":1}', {"ttlInSeconds": "60", "traceparent": "00-abc"}))
        await output.invoke(BindingRequest("create", b"<x/>", {"contentType": "text/xml"}))
    finally:
        await output.close()
    assert response.data is None
    declared = await channel.declare_queue(queue, passive=True)
    first = await declared.get(no_ack=True)
    assert first.body == b'{"job":1}'
    assert first.delivery_mode == aio_pika.DeliveryMode.PERSISTENT
    assert first.content_type == "text/plain"  # Dapr's default
    assert first.expiration == 60  # seconds, per message
    assert first.headers["traceparent"] == "00-abc"
    second = await declared.get(no_ack=True)
    assert (second.body, second.content_type) == (b"<x/>", "text/xml")


async def test_max_priority_makes_a_priority_queue(
        channel: AbstractChannel, queue: str) -> None:
    binding = build({"host": URL, "queueName": queue, "maxPriority": "5"})
    assert binding.output is not None
    await binding.output.start()
    try:
        await binding.output.invoke(BindingRequest("create", b"low", {"priority": "1"}))
        await binding.output.invoke(BindingRequest("create", b"high", {"priority": "5"}))
    finally:
        await binding.output.close()
    declared = await channel.declare_queue(queue, passive=True)
    assert (await declared.get(no_ack=True)).body == b"high"
    assert (await declared.get(no_ack=True)).body == b"low"


@pytest.mark.parametrize(("fields", "field"), [
    ({"priority": "high"}, "priority"),
    ({"priority": "256"}, "priority"),
    ({"ttlInSeconds": "-1"}, "ttlInSeconds"),
])
async def test_bad_request_metadata_is_the_callers_mistake(
        channel: AbstractChannel, queue: str, fields: dict[str, str], field: str) -> None:
    binding = build({"host": URL, "queueName": queue})
    assert binding.output is not None
    await binding.output.start()
    try:
        with pytest.raises(BindingRequestError, match=f"metadata {field} "):
            await binding.output.invoke(BindingRequest("create", b"x", fields))
    finally:
        await binding.output.close()


async def test_a_queue_with_other_settings_fails_start(
        channel: AbstractChannel, queue: str) -> None:
    await channel.declare_queue(queue, durable=True)
    binding = build({"host": URL, "queueName": queue, "durable": "false"})
    assert binding.output is not None
    with pytest.raises(BindingFailedError, match="other settings"):
        await binding.output.start()
    await binding.output.close()


async def test_an_unreachable_server_fails_start() -> None:
    binding = build({"host": "amqp://guest:guest@127.0.0.1:1/", "queueName": "q"})
    assert binding.output is not None and binding.input is not None
    with pytest.raises(BindingFailedError, match="cannot reach RabbitMQ"):
        await binding.output.start()
    with pytest.raises(BindingFailedError, match="cannot reach RabbitMQ"):
        await binding.input.run(lambda message: asyncio.sleep(0))
    await binding.output.close()
    await binding.input.close()


async def test_input_acks_only_what_was_emitted(channel: AbstractChannel, queue: str) -> None:
    binding = build({"host": URL, "queueName": queue, "prefetchCount": "10"})
    assert binding.input is not None and binding.input.exclusive is False
    declared = await channel.declare_queue(queue)
    for body in (b"first", b"second"):
        await channel.default_exchange.publish(
            aio_pika.Message(body, headers={"origin": "test"}, content_type="application/json"),
            routing_key=queue)

    # emit fails: run() ends with the error, the delivery goes back on the queue
    with pytest.raises(RuntimeError, match="could not be stored"):
        await collect(binding, 2, fail_on=lambda m: m.data == b"first")
    got = await collect(binding, 2)
    assert sorted(m.data for m in got) == [b"first", b"second"]
    assert got[0].metadata == {"origin": "test"}
    assert got[0].content_type == "application/json"
    # both were acked after their emit: nothing is left
    declared = await channel.declare_queue(queue, passive=True)
    assert declared.declaration_result.message_count == 0


async def test_close_is_safe_before_run_and_start() -> None:
    binding = build({"host": URL, "queueName": "q"})
    assert binding.input is not None and binding.output is not None
    await binding.input.close()
    await binding.output.close()


@pytest.mark.parametrize(("fields", "field"), [
    ({"queueName": "q"}, "host"),
    ({"host": "http://h", "queueName": "q"}, "host"),
    ({"host": URL}, "queueName"),
    ({"host": URL, "queueName": "q", "durable": "maybe"}, "durable"),
    ({"host": URL, "queueName": "q", "prefetchCount": "-1"}, "prefetchCount"),
    ({"host": URL, "queueName": "q", "ttlInSeconds": "0"}, "ttlInSeconds"),
    ({"host": URL, "queueName": "q", "maxPriority": "256"}, "maxPriority"),
    ({"host": URL, "queueName": "q", "reconnectWait": "soon"}, "reconnectWait"),
])
def test_metadata_mistakes_name_the_field(fields: dict[str, str], field: str) -> None:
    with pytest.raises(BindingConfigError, match=f"metadata {field} ") as caught:
        build(fields)
    assert "'jobs'" in str(caught.value)
