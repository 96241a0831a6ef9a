"""DAPR_API_TOKEN over gRPC: the SDK sends it as ``dapr-api-token`` metadata; a call without
it (or with another) is UNAUTHENTICATED, as Dapr answers. Also InvokeService, which the
SDK uses with DAPR_API_METHOD_INVOCATION_PROTOCOL=grpc, and Shutdown."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
import requests
from dapr.clients.grpc.client import DaprGrpcClient

from tests.grpc.conftest import APP_ID, TOKEN, GrpcSidecar, running
from tests.sidecars import until


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory, redis_address: str
            ) -> Iterator[GrpcSidecar]:
    yield from running(tmp_path_factory.mktemp("grpc-token"), redis_address, TOKEN)


def test_calls_need_the_token(guarded: GrpcSidecar) -> None:
    with guarded.client(TOKEN) as client:
        client.save_state("statestore", "k", "v")
        assert client.get_state("statestore", "k").data == b"v"
    for token in (None, "wrong"):
        with guarded.client(token) as client, pytest.raises(grpc.RpcError) as info:
            client.get_state("statestore", "k")
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.filterwarnings("ignore:invoke_method with protocol gRPC is deprecated")
def test_invoke_service_over_grpc(guarded: GrpcSidecar) -> None:
    guarded.client(TOKEN).close()  # the settings of the sidecar, with its token
    with DaprGrpcClient() as client:
        # the sidecar takes its app's calls once the app listens: until then INTERNAL
        until(lambda: _served(guarded), "the app takes calls")
        answer = client.invoke_method(APP_ID, "greet", data=b"hi there", http_verb="POST",
                                      content_type="text/plain")
    assert answer.data == b""

    def calls() -> list[dict[str, object]]:
        return [r for r in guarded.records() if r["path"] == "/greet"]

    until(lambda: any(c["body"] == "hi there" for c in calls()), "the app got the call")


def _served(sidecar: GrpcSidecar) -> bool:
    response = requests.post(
        f"http://127.0.0.1:{sidecar.http_port}/v1.0/invoke/{APP_ID}/method/ping",
        headers={"dapr-api-token": TOKEN}, timeout=30)
    return response.status_code == 200


def test_shutdown_stops_the_sidecar(guarded: GrpcSidecar) -> None:
    with guarded.client(TOKEN) as client:
        client.shutdown()
    assert guarded.process.proc.wait(60) == 0  # TimeoutExpired if it kept running
