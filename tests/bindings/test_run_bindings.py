"""Bindings between real processes: ``tether run`` with a plain-HTTP app
(tests/bindings/binding_app.py) on the embedded broker: output calls through the sidecar and
tether.Client, async output calls; input from cron, RabbitMQ, MQTT and Kafka (sent with the
raw clients) delivered to the app with RETRY retried and DROP dead-lettered; a cron that
fires once across two replicas and moves to the survivor when one is SIGKILLed; a sidecar
SIGKILLed mid-stream losing no RabbitMQ message.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

import tether
from tests import sidecars
from tests.bindings.conftest import RABBITMQ_URL
from tests.invocation.test_run_invoke import WAIT
from tests.servers import unavailable
from tests.sidecars import component, until, write_components

APP = Path(__file__).with_name("binding_app.py")
APP_ID = "binder"


class Sidecar(sidecars.Sidecar):
    """``tether run`` of the bindings app (tests/bindings/binding_app.py)."""

    def __init__(self, root: Path, name: str = "app") -> None:
        super().__init__(root, APP, APP_ID, name)

    def bind(self, name: str, body: dict[str, Any]) -> requests.Response:
        return self.session.post(self.url(f"/v1.0/bindings/{name}"), json=body, timeout=WAIT)

    def events(self) -> list[dict[str, Any]]:
        return self.records("events.jsonl")


MQTT_URL = "tcp://127.0.0.1:1883"


def reachable(port: int, what: str) -> None:
    try:
        socket.create_connection(("127.0.0.1", port), 2).close()
    except OSError as exc:
        unavailable(f"{what} is not reachable on 127.0.0.1:{port}: {exc}")


@pytest.fixture(scope="module")
def names() -> dict[str, str]:
    """Queue and topic names of this run (the servers are shared by every test)."""
    tag = uuid.uuid4().hex[:8]
    return {"queue": f"tether-run-{tag}", "mqtt": f"tether/run/{tag}",
            "kafka": f"tether-run-{tag}"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, names: dict[str, str],
        kafka_address: str) -> Iterator[Sidecar]:
    reachable(5672, "RabbitMQ")
    reachable(1883, "Mosquitto")
    root = tmp_path_factory.mktemp("bindings-run")
    write_components(
        root / "components",
        component("pubsub", "pubsub.tether.embedded", path=str(root / "broker.db")),
        component("files", "bindings.localstorage", rootPath=str(root / "files")),
        component("ticks", "bindings.cron", schedule="@every 1s", route="/tick"),
        component("unwanted", "bindings.cron", schedule="@every 1s"),
        component("orders", "bindings.rabbitmq", host=RABBITMQ_URL,
                  queueName=names["queue"], durable="true", deleteWhenUnused="false"),
        component("sensors", "bindings.mqtt3", url=MQTT_URL, topic=names["mqtt"],
                  consumerID=f"tether-{names['mqtt'].rsplit('/', 1)[1]}", qos="1"),
        component("clicks", "bindings.kafka", brokers=kafka_address, topics=names["kafka"],
                  consumerGroup="binder", initialOffset="oldest", direction="input"),
    )
    sidecar = Sidecar(root)
    try:
        sidecar.until_up()
        yield sidecar
    finally:
        log = sidecar.process.stop()
        assert "Traceback" not in log, log


def test_output_calls_answer_with_the_component_s_data_and_metadata(run: Sidecar) -> None:
    created = run.bind("files", {"operation": "create", "data": {"order": 7},
                                 "metadata": {"fileName": "orders/7.json"}})
    assert created.status_code in (200, 204), created.text
    assert (run.root / "files" / "orders" / "7.json").read_bytes() == b'{"order":7}'
    got = run.bind("files", {"operation": "get", "metadata": {"fileName": "orders/7.json"}})
    assert (got.status_code, got.content) == (200, b'{"order":7}')
    listed = run.bind("files", {"operation": "list"})
    assert listed.status_code == 200 and "7.json" in listed.text


@pytest.mark.parametrize(("name", "body", "status"), [
    ("nope", {"operation": "create"}, 404),
    ("files", {"operation": "exec"}, 400),
    ("files", {"operation": "get", "metadata": {"fileName": "../escape"}}, 400),
    ("files", {"operation": "get", "metadata": {"fileName": "missing.txt"}}, 404),
    ("files", {"operation": "create", "metadata": {"fileName": 5}}, 400),
])
def test_bad_output_calls_get_dapr_s_error_shape(
    run: Sidecar, name: str, body: dict[str, Any], status: int,
) -> None:
    answer = run.bind(name, body)
    assert answer.status_code == status, answer.text
    assert answer.json()["errorCode"] in ("ERR_INVOKE_OUTPUT_BINDING", "ERR_MALFORMED_REQUEST")
    assert not (run.root / "escape").exists()


def test_the_client_invokes_bindings_with_dapr_s_sdk_names(run: Sidecar) -> None:
    with tether.Client(run.url("")) as client:
        client.invoke_binding("files", "create", "hello", {"fileName": "hello.txt"})
        answer = client.invoke_binding("files", "get", binding_metadata={"fileName": "hello.txt"})
        assert answer.text() == "hello"
        with pytest.raises(tether.TetherApiError) as caught:
            client.invoke_binding("files", "get", binding_metadata={"fileName": "none.txt"})
        assert caught.value.status == 404
        call_id = client.submit_binding("files", "create", "later",
                                        {"fileName": "later.txt"}, key="k")
        assert call_id
    until(lambda: (run.root / "files" / "later.txt").exists(), "the async call to run", run)
    assert (run.root / "files" / "later.txt").read_text() == "later"


# --- input --------------------------------------------------------------------------------


def bodies(sidecar: Sidecar, path: str) -> list[str]:
    return [e["body"] for e in sidecar.events() if e["path"] == path]


def test_cron_ticks_reach_the_app_at_its_route_with_dapr_s_metadata(run: Sidecar) -> None:
    until(lambda: len(bodies(run, "/tick")) >= 2, "two cron ticks", run)
    ticks = [e for e in run.events() if e["path"] == "/tick"]
    stamps = [e["headers"]["readTimeUTC"] for e in ticks]
    assert len(set(stamps)) == len(stamps)  # one event per tick
    assert all(e["headers"]["Content-Type"] == "application/json" for e in ticks)
    assert not [e for e in run.events() if e["path"] == "/unwanted"]  # OPTIONS said 404


async def _send_rabbitmq(queue: str, messages: list[bytes]) -> None:
    import aio_pika

    connection = await aio_pika.connect(RABBITMQ_URL)
    async with connection:
        channel = await connection.channel()
        for body in messages:
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=queue)


async def _send_mqtt(topic: str, messages: list[bytes]) -> None:
    import aiomqtt

    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        for body in messages:
            await client.publish(topic, body, qos=1)


async def _send_kafka(address: str, topic: str, messages: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    try:
        for body in messages:
            await producer.send_and_wait(topic, body, key=b"k")
    finally:
        await producer.stop()


def dead_letters(sidecar: Sidecar, binding: str, count: int) -> list[bytes]:
    """The first ``count`` events of the binding's dead-letter topic (read from the
    embedded broker's file by this process, a consumer group of its own)."""
    from tether.brokers import SubscribeOptions, open_broker
    from tether.platform.bindings.messages import input_dead_letter_topic, read_input

    async def read() -> list[bytes]:
        found: list[bytes] = []
        async with open_broker(f"embedded://{sidecar.root / 'broker.db'}") as broker:
            async with broker.subscribe(input_dead_letter_topic(binding),
                                        f"check-{uuid.uuid4().hex[:6]}",
                                        SubscribeOptions(start_from="earliest")) as sub:
                async for delivery in sub:
                    found.append(read_input(delivery.event).data)
                    await delivery.ack()
                    if len(found) >= count:
                        return found
        return found

    return asyncio.run(asyncio.wait_for(read(), WAIT))


@pytest.mark.parametrize("source", ["orders", "sensors", "clicks"])
def test_messages_reach_the_app_retry_is_retried_and_drop_is_dead_lettered(
    run: Sidecar, names: dict[str, str], kafka_address: str, source: str,
) -> None:
    tag = uuid.uuid4().hex[:6]
    messages = [f"plain-{tag}".encode(), f"retry:3:{tag}".encode(), f"drop:{tag}".encode()]
    if source == "orders":
        asyncio.run(_send_rabbitmq(names["queue"], messages))
    elif source == "sensors":
        asyncio.run(_send_mqtt(names["mqtt"], messages))
    else:
        asyncio.run(_send_kafka(kafka_address, names["kafka"], messages))
    path = f"/{source}"
    until(lambda: bodies(run, path).count(f"retry:3:{tag}") >= 3
          and f"plain-{tag}" in bodies(run, path), f"the {source} messages", run)
    assert bodies(run, path).count(f"plain-{tag}") == 1
    assert f"drop:{tag}".encode() in dead_letters(run, source, 1)


# --- replicas and crashes -----------------------------------------------------------------


def test_cron_fires_once_across_two_replicas_and_moves_when_one_is_killed(
    tmp_path: Path,
) -> None:
    write_components(
        tmp_path / "components",
        component("pubsub", "pubsub.tether.embedded", path=str(tmp_path / "broker.db")),
        component("ticks", "bindings.cron", schedule="@every 1s", route="/tick"),
    )
    replicas = [Sidecar(tmp_path, "one"), Sidecar(tmp_path, "two")]

    def ticks() -> list[tuple[str, str]]:
        return [(r.folder.name, e["headers"]["readTimeUTC"])
                for r in replicas for e in r.events() if e["path"] == "/tick"]

    try:
        for replica in replicas:
            replica.until_up()
        until(lambda: len(ticks()) >= 6, "six ticks", *replicas)
        stamps = [stamp for _, stamp in ticks()]
        assert len(set(stamps)) == len(stamps), ticks()  # no tick fired twice
        holder = ticks()[-1][0]
        killed = next(r for r in replicas if r.folder.name == holder)
        survivor = next(r for r in replicas if r is not killed)
        os.kill(killed.process.proc.pid, signal.SIGKILL)
        killed.process.proc.wait()
        before = len([t for t in ticks() if t[0] == survivor.folder.name])
        until(lambda: len([t for t in ticks() if t[0] == survivor.folder.name]) >= before + 3,
              "the survivor to fire", survivor)
        stamps = [stamp for _, stamp in ticks()]
        assert len(set(stamps)) == len(stamps), ticks()
    finally:
        for replica in replicas:
            replica.process.stop()


def test_a_sidecar_killed_mid_stream_loses_no_source_message(tmp_path: Path) -> None:
    reachable(5672, "RabbitMQ")
    queue = f"tether-kill-{uuid.uuid4().hex[:8]}"
    write_components(
        tmp_path / "components",
        component("pubsub", "pubsub.tether.embedded", path=str(tmp_path / "broker.db")),
        component("orders", "bindings.rabbitmq", host=RABBITMQ_URL, queueName=queue,
                  durable="true", deleteWhenUnused="false"),
    )
    sent = [f"m{i:04d}" for i in range(400)]
    first = Sidecar(tmp_path, "first")
    try:
        first.until_up()
        asyncio.run(_send_rabbitmq(queue, [m.encode() for m in sent]))
        until(lambda: len(bodies(first, "/orders")) >= 20, "some deliveries", first)
        os.kill(first.process.proc.pid, signal.SIGKILL)  # mid-stream
        first.process.proc.wait()
    finally:
        first.process.stop()
    second = Sidecar(tmp_path, "second")
    try:
        second.until_up()
        until(lambda: set(sent) <= set(bodies(first, "/orders")) | set(bodies(second, "/orders")),
              "every message after the restart", second)
    finally:
        log = second.process.stop()
        assert "Traceback" not in log, log
