"""SubscribeConfiguration(Alpha1) and UnsubscribeConfiguration with the SDK against
``tether run``: changes arrive on the stream, unsubscribing ends it."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import grpc
import pytest
import redis
from dapr.clients import DaprClient
from dapr.clients.grpc._response import ConfigurationResponse
from dapr.proto.runtime.v1 import configuration_pb2
from dapr.proto.runtime.v1.dapr_pb2_grpc import DaprStub

from tests.grpc.conftest import GrpcSidecar
from tests.sidecars import until


@pytest.fixture
def store(redis_address: str) -> Iterator[redis.Redis]:
    host, port = redis_address.split(":")
    with redis.Redis(host=host, port=int(port)) as r:
        yield r


def test_sdk_subscribe_and_unsubscribe(client: DaprClient, store: redis.Redis) -> None:
    got: list[tuple[str, dict[str, tuple[str, str]]]] = []
    lock = threading.Lock()

    def handler(sub_id: str, answer: ConfigurationResponse) -> None:
        with lock:
            got.append((sub_id, {k: (v.value, v.version) for k, v in answer.items.items()}))

    sub_id = client.subscribe_configuration("config", ["sub-color"], handler)
    assert sub_id
    store.set("sub-color", "red||1")
    until(lambda: len(got) >= 1, "the change pushed down the stream")
    assert got[0] == (sub_id, {"sub-color": ("red", "1")})
    assert client.unsubscribe_configuration("config", sub_id) is True
    assert client.unsubscribe_configuration("config", sub_id) is False  # gone


def test_unsubscribe_ends_the_stream(sidecar: GrpcSidecar, store: redis.Redis) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stub = DaprStub(channel)
        stream = stub.SubscribeConfiguration(configuration_pb2.SubscribeConfigurationRequest(
            store_name="config", keys=["sub-size"]))
        first = next(stream)
        assert first.id and not first.items
        store.set("sub-size", "XL")
        change = next(stream)
        assert (change.id, change.items["sub-size"].value) == (first.id, "XL")
        answer = stub.UnsubscribeConfiguration(
            configuration_pb2.UnsubscribeConfigurationRequest(store_name="config",
                                                              id=first.id))
        assert (answer.ok, answer.message) == (True, "")
        assert list(stream) == []  # ended by the sidecar
        unknown = stub.UnsubscribeConfiguration(
            configuration_pb2.UnsubscribeConfigurationRequest(store_name="config", id="nope"))
        assert not unknown.ok and "nope does not exist" in unknown.message


def test_unknown_store(sidecar: GrpcSidecar) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        stream = DaprStub(channel).SubscribeConfigurationAlpha1(
            configuration_pb2.SubscribeConfigurationRequest(store_name="nope"))
        with pytest.raises(grpc.RpcError) as info:
            next(stream)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "configuration store nope not found" in (info.value.details() or "")
