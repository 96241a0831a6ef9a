"""``tether.App`` with bindings in process: RabbitMQ messages (the machine's server, sent
with the raw client) reach an ``@app.binding`` handler, which writes them through a
``bindings.localstorage`` output with ``app.invoke_binding``; RETRY is retried and DROP
dead-lettered, as under a sidecar."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import pytest
import yaml

import tether
from tests.bindings.conftest import RABBITMQ_URL as URL
from tests.workers import WAIT, until
from tether.brokers import SubscribeOptions, open_broker
from tether.platform.bindings.messages import input_dead_letter_topic, read_input
from tether.platform.errors import ApiError
from tether.sdk.bindings import BindingEvent
from tether.workers.delivery import DeliveryOptions
from tether.workers.retry import Backoff


def component(name: str, type_: str, **meta: str) -> dict[str, object]:
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": name},
            "spec": {"type": type_, "version": "v1",
                     "metadata": [{"name": k, "value": v} for k, v in meta.items()]}}


@pytest.fixture
def resources(tmp_path: Path, queue: str) -> Path:
    folder = tmp_path / "components"
    folder.mkdir()
    (folder / "all.yaml").write_text(yaml.safe_dump_all([
        component("pubsub", "pubsub.tether.embedded", path=str(tmp_path / "broker.db")),
        component("orders", "bindings.rabbitmq", host=URL, queueName=queue, durable="false",
                  deleteWhenUnused="false"),
        component("files", "bindings.localstorage", rootPath=str(tmp_path / "files")),
    ]))
    return folder


@pytest.fixture
async def rabbit(channel: aio_pika.abc.AbstractChannel, queue: str
                 ) -> AsyncIterator[aio_pika.abc.AbstractChannel]:
    yield channel


async def send(channel: aio_pika.abc.AbstractChannel, queue: str, *bodies: bytes) -> None:
    for body in bodies:
        await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def test_rabbitmq_messages_reach_a_handler_that_writes_through_an_output(
    resources: Path, rabbit: aio_pika.abc.AbstractChannel, queue: str,
) -> None:
    app = tether.App("binder", resources_path=resources,
                     options=DeliveryOptions(backoff=Backoff(initial=0.01, maximum=0.05),
                                             max_deliveries=5))
    attempts: dict[bytes, int] = {}

    @app.binding("orders")
    async def on_order(event: BindingEvent) -> None:
        attempts[event.data] = attempts.get(event.data, 0) + 1
        if event.data == b"drop":
            raise tether.Drop("never")
        if event.data == b"retry" and attempts[event.data] < 3:
            raise tether.Retry()
        await app.invoke_binding("files", "create", event.data,
                                 {"fileName": event.data.decode() + ".txt"})

    async with app.run():
        await send(rabbit, queue, b"one", b"retry", b"drop", b"two")
        files = resources.parent / "files"
        await until(lambda: {"one.txt", "two.txt", "retry.txt"} <= {
            p.name for p in files.glob("*.txt")}, "the three files")
        with pytest.raises(ApiError) as caught:
            await app.invoke_binding("files", "exec")
        assert caught.value.status == 400
    assert attempts[b"retry"] == 3 and attempts[b"one"] == 1
    assert (files / "one.txt").read_bytes() == b"one"
    async with open_broker(f"embedded://{resources.parent / 'broker.db'}") as broker:
        async with broker.subscribe(input_dead_letter_topic("orders"), "check",
                                    SubscribeOptions(start_from="earliest")) as sub:
            delivery = await asyncio.wait_for(sub.__anext__(), WAIT)
            await delivery.ack()
            assert read_input(delivery.event).data == b"drop"


async def test_a_handler_for_a_binding_the_app_lacks_fails_the_start(resources: Path) -> None:
    app = tether.App("binder", resources_path=resources)

    @app.binding(f"nope-{uuid.uuid4().hex[:4]}")
    async def handler(event: BindingEvent) -> None:
        pass

    with pytest.raises(ValueError, match="no input binding component"):
        await app.start()
    await app.stop()
