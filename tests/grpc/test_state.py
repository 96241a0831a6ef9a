"""The SDK's state calls over gRPC against ``tether run``, and the HTTP API seeing the
same items (one implementation, two front ends)."""

from __future__ import annotations

import grpc
import pytest
import requests
from dapr.clients import DaprClient
from dapr.clients.exceptions import DaprGrpcError
from dapr.clients.grpc._request import TransactionalStateOperation, TransactionOperationType
from dapr.clients.grpc._state import Concurrency, StateItem, StateOptions
from dapr.proto.common.v1 import common_pb2
from dapr.proto.runtime.v1 import state_pb2
from dapr.proto.runtime.v1.dapr_pb2_grpc import DaprStub

from tests.grpc.conftest import GrpcSidecar

STORE = "statestore"


def test_save_get_delete(client: DaprClient, sidecar: GrpcSidecar) -> None:
    client.save_state(STORE, "order-1", '{"qty": 3}', state_metadata={"ttlInSeconds": "600"})
    got = client.get_state(STORE, "order-1")
    assert got.data == b'{"qty": 3}'
    assert got.etag
    # the HTTP API reads what the gRPC API wrote
    http = requests.get(f"http://127.0.0.1:{sidecar.http_port}/v1.0/state/{STORE}/order-1",
                        timeout=30)
    assert (http.status_code, http.json(), http.headers["ETag"]) == (200, {"qty": 3},
                                                                    got.etag)
    client.delete_state(STORE, "order-1")
    assert client.get_state(STORE, "order-1").data == b""


def test_bytes_and_etags(client: DaprClient) -> None:
    client.save_state(STORE, "blob", b"\x00\xffraw")
    first = client.get_state(STORE, "blob")
    assert first.data == b"\x00\xffraw"
    client.save_state(STORE, "blob", b"v2", etag=first.etag)
    with pytest.raises(DaprGrpcError) as info:  # the ETag it had is no longer current
        client.save_state(STORE, "blob", b"v3", etag=first.etag)
    assert info.value.code() == grpc.StatusCode.ABORTED
    with pytest.raises(DaprGrpcError) as info:  # first write: the key exists
        client.save_state(STORE, "blob", b"v3",
                          options=StateOptions(concurrency=Concurrency.first_write))
    assert info.value.code() == grpc.StatusCode.ABORTED
    assert client.get_state(STORE, "blob").data == b"v2"


def test_bulk_and_transactions(client: DaprClient, sidecar: GrpcSidecar) -> None:
    client.save_bulk_state(STORE, [StateItem(key="b1", value="1"),
                                   StateItem(key="b2", value="2")])
    assert client.get_state(STORE, "b2").data == b"2"
    client.execute_state_transaction(STORE, [
        TransactionalStateOperation(key="t1", data='"one"'),
        TransactionalStateOperation(key="t2", data='"two"'),
        TransactionalStateOperation(key="gone", data="x"),
    ])
    client.execute_state_transaction(STORE, [
        TransactionalStateOperation(key="gone", data="",
                                    operation_type=TransactionOperationType.delete),
    ])
    items = client.get_bulk_state(STORE, ["t1", "t2", "gone"]).items
    assert [(i.key, i.data) for i in items] == [("t1", b'"one"'), ("t2", b'"two"'),
                                               ("gone", b"")]
    # DeleteBulkState has no SDK method: the SDK's generated stub calls it
    with grpc.insecure_channel(f"127.0.0.1:{sidecar.grpc_port}") as channel:
        DaprStub(channel).DeleteBulkState(state_pb2.DeleteBulkStateRequest(
            store_name=STORE, states=[common_pb2.StateItem(key="t1"),
                                      common_pb2.StateItem(key="t2")]))
    assert [i.data for i in client.get_bulk_state(STORE, ["t1", "t2"]).items] == [b"", b""]


def test_query(client: DaprClient) -> None:
    for n in range(3):
        client.save_state(STORE, f"q{n}", f'{{"kind": "query", "n": {n}}}')
    found = client.query_state(
        STORE, '{"filter": {"EQ": {"kind": "query"}}, "sort": [{"key": "n"}]}'
    )
    assert [r.key for r in found.results] == ["q0", "q1", "q2"]
    assert found.results[1].json() == {"kind": "query", "n": 1}


def test_unknown_store_is_invalid_argument(client: DaprClient) -> None:
    with pytest.raises(DaprGrpcError) as info:
        client.get_state("nope", "k")
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "state store nope is not found" in (info.value.details() or "")
