"""Pub/sub components -> broker URLs, and the registry that opens each broker once."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from tests.brokers.helpers import take
from tether.brokers import Broker
from tether.brokers.memory import MemoryBroker
from tether.platform.components import Component, SecretKeyRef, Templates, load_documents
from tether.platform.events import CloudEvent
from tether.platform.pubsub import (
    SECRET_REFS_UNSUPPORTED,
    PubSubConfigError,
    PubSubRegistry,
    PubSubSpec,
    broker_spec,
)


def component(type_: str, name: str = "ps", **metadata: str | SecretKeyRef) -> Component:
    return Component(name=name, type=type_, metadata=metadata)


def test_embedded_component_is_its_file() -> None:
    spec = broker_spec(component("pubsub.tether.embedded", path="/tmp/x/broker.db"))
    assert spec.url == "embedded:///tmp/x/broker.db"
    assert (spec.name, spec.type, spec.version) == ("ps", "pubsub.tether.embedded", "v1")


def test_in_memory_component_is_named_after_the_component() -> None:
    assert broker_spec(component("pubsub.in-memory", name="orders")).url == "memory://orders"


def test_kafka_component() -> None:
    spec = broker_spec(
        component(
            "pubsub.kafka",
            brokers="k1:9092, k2:9093",
            authType="none",
            consumerGroup="grp",
            initialOffset="Oldest",
        )
    )
    assert spec.url == "kafka://k1:9092,k2:9093"
    assert (spec.consumer_group, spec.initial_offset) == ("grp", "oldest")


@pytest.mark.parametrize(
    ("metadata", "problem"),
    [
        ({"brokers": "k:9092", "authType": "password"}, "authType 'password' is not supported"),
        ({}, "metadata brokers is required"),
        ({"brokers": " , "}, "names no host:port"),
        ({"brokers": "k:9092", "initialOffset": "latest"}, "must be newest or oldest"),
    ],
)
def test_kafka_component_errors(metadata: dict[str, str], problem: str) -> None:
    with pytest.raises(PubSubConfigError, match=problem):
        broker_spec(component("pubsub.kafka", **metadata))


def test_redis_component() -> None:
    spec = broker_spec(
        component("pubsub.redis", redisHost="h:6380", redisPassword="p@ss/w", redisDB="3")
    )
    assert spec.url == "redis://:p%40ss%2Fw@h:6380/3"
    assert broker_spec(component("pubsub.redis", redisHost="h:1")).url == "redis://h:1/0"
    tls = broker_spec(component("pubsub.redis", redisHost="h:1", enableTLS="true"))
    assert tls.url == "rediss://h:1/0"
    with pytest.raises(PubSubConfigError, match="redisDB 'x' must be a number"):
        broker_spec(component("pubsub.redis", redisHost="h:1", redisDB="x"))


def test_servicebus_component_keeps_the_secret_out_of_the_url() -> None:
    secret = "Endpoint=sb://ns1.servicebus.windows.net/;SharedAccessKeyName=k;SharedAccessKey=s3"
    spec = broker_spec(component("pubsub.azure.servicebus.topics", connectionString=secret))
    assert spec.url == "servicebus://ns1.servicebus.windows.net"
    assert spec.secret == secret
    assert "s3" not in repr(spec)
    with pytest.raises(PubSubConfigError, match="connectionString is required"):
        broker_spec(component("pubsub.azure.servicebus.topics"))
    with pytest.raises(PubSubConfigError, match="no Endpoint"):
        broker_spec(component("pubsub.azure.servicebus.topics", connectionString="a=b"))


def test_unknown_type_names_the_supported_ones() -> None:
    with pytest.raises(PubSubConfigError) as info:
        broker_spec(component("pubsub.rabbitmq", name="rabbit"))
    message = str(info.value)
    assert "'rabbit'" in message and "'pubsub.rabbitmq' is not supported" in message
    assert "pubsub.kafka" in message and "pubsub.redis" in message


def test_an_unresolved_secret_ref_is_refused_with_a_message_to_resolve_it_first() -> None:
    with pytest.raises(PubSubConfigError, match=SECRET_REFS_UNSUPPORTED) as info:
        broker_spec(
            component("pubsub.redis", redisHost="h:1", redisPassword=SecretKeyRef("s", "k"))
        )
    assert "redisPassword" in str(info.value)


def test_errors_name_the_file_and_document() -> None:
    yaml = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {name: broken}
spec: {type: pubsub.kafka, version: v1, metadata: []}
"""
    (loaded,) = load_documents(yaml, "comp.yaml", Templates("app"))
    assert isinstance(loaded, Component)
    with pytest.raises(PubSubConfigError, match=r"'broken' \(comp.yaml, document 1\)"):
        PubSubRegistry([loaded])


def test_registry_keeps_pubsub_components_only() -> None:
    registry = PubSubRegistry(
        [component("pubsub.in-memory", name="a"), component("state.redis", name="store")]
    )
    assert registry.names == ("a",)
    assert registry.spec("store") is None


async def test_brokers_open_lazily_once_and_close(tmp_path: Path) -> None:
    opened: list[PubSubSpec] = []

    def opener(spec: PubSubSpec) -> Broker:
        opened.append(spec)
        return MemoryBroker(f"registry-{uuid.uuid4().hex}")

    registry = PubSubRegistry(
        [component("pubsub.in-memory", name="a"), component("pubsub.in-memory", name="b")],
        opener=opener,
    )
    assert opened == []
    first, second = await asyncio.gather(registry.broker("a"), registry.broker("a"))
    assert first is second
    assert [s.name for s in opened] == ["a"]
    with pytest.raises(KeyError):
        await registry.broker("missing")
    await registry.close()
    with pytest.raises(PubSubConfigError, match="closed"):
        await registry.broker("b")
    assert [s.name for s in opened] == ["a"]


async def test_in_memory_components_share_one_store_in_the_process() -> None:
    name = f"shared-{uuid.uuid4().hex}"
    one = PubSubRegistry([component("pubsub.in-memory", name=name)])
    two = PubSubRegistry([component("pubsub.in-memory", name=name)])
    try:
        sent = CloudEvent(type="t", source="s", data={"n": 1})
        await (await one.broker(name)).publish("topic", sent)
        async with (await two.broker(name)).subscribe("topic", "g") as subscription:
            (got,) = await take(subscription, 1)
        assert got.event == sent
    finally:
        await one.close()
        await two.close()


async def test_embedded_component_opens_a_durable_broker(tmp_path: Path) -> None:
    path = tmp_path / "b.db"
    registry = PubSubRegistry([component("pubsub.tether.embedded", path=str(path))])
    try:
        await (await registry.broker("ps")).publish("t", CloudEvent(type="t", source="s"))
    finally:
        await registry.close()
    assert path.exists()
