"""The SDK's pub/sub, bindings, secrets, configuration, lock and metadata calls over gRPC
against ``tether run``, and the gRPC codes of their errors."""

from __future__ import annotations

import json

import grpc
import pytest
import redis
import requests
from dapr.clients import DaprClient
from dapr.clients.grpc._response import UnlockResponseStatus
from dapr.proto.runtime.v1 import metadata_pb2
from dapr.proto.runtime.v1.dapr_pb2_grpc import DaprStub

from tests.grpc.conftest import APP_ID, GrpcSidecar
from tests.sidecars import until


def _code(exc: pytest.ExceptionInfo[grpc.RpcError]) -> grpc.StatusCode:
    return exc.value.code()


def test_publish_reaches_the_app_as_a_cloudevent(client: DaprClient,
                                                 sidecar: GrpcSidecar) -> None:
    client.publish_event("pubsub", "orders", json.dumps({"id": 7}),
                         data_content_type="application/json")
    client.publish_event("pubsub", "orders", "plain text")

    def delivered() -> list[dict[str, object]]:
        return [json.loads(r["body"]) for r in sidecar.records() if r["path"] == "/orders"]

    until(lambda: len(delivered()) == 2, "both events delivered")
    by_type = {e["datacontenttype"]: e for e in delivered()}
    event = by_type["application/json"]
    assert (event["data"], event["source"], event["topic"], event["pubsubname"],
            event["type"], event["specversion"]) == (
        {"id": 7}, APP_ID, "orders", "pubsub", "com.dapr.event.sent", "1.0")
    assert by_type["text/plain"]["data"] == "plain text"


def test_bulk_publish(client: DaprClient, sidecar: GrpcSidecar) -> None:
    before = len(sidecar.records())
    answer = client.publish_events("pubsub", "orders", ['{"n": 1}', '{"n": 2}'],
                                   data_content_type="application/json")
    assert answer.failed_entries == []
    until(lambda: len(sidecar.records()) == before + 2, "both entries delivered")
    data = sorted(json.loads(r["body"])["data"]["n"] for r in sidecar.records()[before:])
    assert data == [1, 2]


def test_publish_errors(client: DaprClient) -> None:
    with pytest.raises(grpc.RpcError) as info:
        client.publish_event("nope", "orders", "x")
    assert _code(info) == grpc.StatusCode.INVALID_ARGUMENT
    assert "pubsub nope not found" in (info.value.details() or "")


def test_output_binding(client: DaprClient, sidecar: GrpcSidecar) -> None:
    client.invoke_binding("files", "create", b"hello file",
                          binding_metadata={"fileName": "a.txt"})
    assert (sidecar.root / "files" / "a.txt").read_bytes() == b"hello file"
    got = client.invoke_binding("files", "get", binding_metadata={"fileName": "a.txt"})
    assert got.data == b"hello file"
    with pytest.raises(grpc.RpcError) as info:
        client.invoke_binding("files", "get", binding_metadata={"fileName": "missing.txt"})
    assert _code(info) == grpc.StatusCode.NOT_FOUND


def test_secrets(client: DaprClient) -> None:
    assert client.get_secret("secrets", "db-password").secret == {"db-password": "s3cret"}
    assert client.get_bulk_secret("secrets").secrets == {
        "db-password": {"db-password": "s3cret"}, "api-key": {"api-key": "k"}}
    with pytest.raises(grpc.RpcError) as info:
        client.get_secret("nope", "db-password")
    assert _code(info) == grpc.StatusCode.INVALID_ARGUMENT


def test_configuration(client: DaprClient, redis_address: str) -> None:
    host, port = redis_address.split(":")
    with redis.Redis(host=host, port=int(port)) as r:
        r.set("grpc-color", "blue||3")
        r.set("grpc-size", "XL")
    got = client.get_configuration("config", ["grpc-color", "grpc-size", "grpc-none"])
    assert {k: (v.value, v.version) for k, v in got.items.items()} == {
        "grpc-color": ("blue", "3"), "grpc-size": ("XL", "")}
    with pytest.raises(grpc.RpcError) as info:
        client.get_configuration("nope", ["grpc-color"])
    assert _code(info) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.filterwarnings("ignore:The Distributed Lock API is an Alpha")
def test_lock(client: DaprClient) -> None:
    first = client.try_lock("locks", "printer", "alice", expiry_in_seconds=60)
    assert first.success
    assert not client.try_lock("locks", "printer", "bob", expiry_in_seconds=60).success
    assert client.unlock("locks", "printer", "bob").status == \
        UnlockResponseStatus.lock_belongs_to_others
    assert client.unlock("locks", "printer", "alice").status == UnlockResponseStatus.success
    assert client.unlock("locks", "printer", "alice").status == \
        UnlockResponseStatus.lock_does_not_exist
    with pytest.raises(grpc.RpcError) as info:
        client.try_lock("nope", "printer", "alice", expiry_in_seconds=60)
    assert _code(info) == grpc.StatusCode.INVALID_ARGUMENT


def test_metadata(client: DaprClient, sidecar: GrpcSidecar) -> None:
    client.set_metadata("team", "blue")
    found = client.get_metadata()
    assert found.application_id == APP_ID
    assert found.extended_metadata["team"] == "blue"
    assert {c.name: c.type for c in found.registered_components} == {
        "pubsub": "pubsub.tether.embedded", "statestore": "state.sqlite",
        "files": "bindings.localstorage", "secrets": "secretstores.local.file",
        "config": "configuration.redis", "locks": "lock.redis"}
    # the SDK's answer leaves subscriptions out; its generated stub reads them
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        raw = DaprStub(channel).GetMetadata(metadata_pb2.GetMetadataRequest())
    assert [(s.pubsub_name, s.topic, s.type) for s in raw.subscriptions] == [
        ("pubsub", "orders", metadata_pb2.PubsubSubscriptionType.DECLARATIVE)]
    # the HTTP API holds the same extended metadata
    http = requests.get(f"http://127.0.0.1:{sidecar.http_port}/v1.0/metadata", timeout=30)
    assert http.json()["extended"]["team"] == "blue"

