"""One ``tether run`` per module with Dapr's gRPC API on ``-G``, and the official SDK's
``DaprClient`` pointed at it, as an app under ``dapr run`` would find it."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from dapr.clients import DaprClient
from dapr.conf import settings

from tests.invocation.test_run_invoke import WAIT, Process
from tests.sidecars import component, write_components
from tether.cli.run import free_port

#: the bindings tests' app: it records every POST (here: the topic's deliveries)
APP = Path(__file__).parents[1] / "bindings" / "binding_app.py"
APP_ID = "grpc-app"
TOKEN = "grpc-test-token"

ORDERS = {
    "apiVersion": "dapr.io/v2alpha1", "kind": "Subscription", "metadata": {"name": "orders"},
    "spec": {"pubsubname": "pubsub", "topic": "orders", "routes": {"default": "/orders"}},
}


class GrpcSidecar:
    """``tether run`` of the recording app with every block's component, its HTTP and
    gRPC ports, and the folder the app writes ``events.jsonl`` in."""

    def __init__(self, root: Path, redis_address: str, token: str | None = None) -> None:
        self.root = root
        self.folder = root / "app"
        self.folder.mkdir()
        (root / "secrets.json").write_text(json.dumps({"db-password": "s3cret",
                                                       "api-key": "k"}))
        write_components(
            root / "components",
            component("pubsub", "pubsub.tether.embedded", path=str(root / "broker.db"),
                      sessionTimeout="3s"),
            component("statestore", "state.sqlite", connectionString=str(root / "state.db")),
            component("files", "bindings.localstorage", rootPath=str(root / "files")),
            component("secrets", "secretstores.local.file",
                      secretsFile=str(root / "secrets.json")),
            component("config", "configuration.redis", redisHost=redis_address),
            component("locks", "lock.redis", redisHost=redis_address),
            ORDERS,
        )
        self.http_port, self.grpc_port = free_port(), free_port()
        saved = os.environ.get("DAPR_API_TOKEN")
        if token is not None:
            os.environ["DAPR_API_TOKEN"] = token
        try:
            self.process = Process(
                ["-a", APP_ID, "-p", str(free_port()), "-H", str(self.http_port),
                 "-G", str(self.grpc_port), "--enable-metrics", "false",
                 "-d", str(root / "components"), "--", sys.executable, str(APP)],
                self.folder, root / "tether.log",
            )
        finally:
            if saved is None:
                os.environ.pop("DAPR_API_TOKEN", None)
            else:
                os.environ["DAPR_API_TOKEN"] = saved

    def until_up(self) -> None:
        deadline = time.monotonic() + WAIT
        while True:
            self.process.alive()
            try:
                url = f"http://127.0.0.1:{self.http_port}/v1.0/healthz"
                if requests.get(url, timeout=5).status_code == 204:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, self.process.log.read_text()
            time.sleep(0.1)

    def client(self, token: str | None = None) -> DaprClient:
        """The SDK's client as an app gets it: the sidecar's ports from its settings."""
        settings.DAPR_HTTP_ENDPOINT = None
        settings.DAPR_GRPC_ENDPOINT = None
        settings.DAPR_RUNTIME_HOST = "127.0.0.1"
        settings.DAPR_HTTP_PORT = self.http_port
        settings.DAPR_GRPC_PORT = self.grpc_port
        settings.DAPR_API_TOKEN = token
        return DaprClient()

    def records(self) -> list[dict[str, Any]]:
        path = self.folder / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]

    def stop(self) -> str:
        return self.process.stop()


def running(root: Path, redis_address: str, token: str | None = None
            ) -> Iterator[GrpcSidecar]:
    """A started GrpcSidecar for the length of a fixture; its log must show no traceback."""
    one = GrpcSidecar(root, redis_address, token=token)
    try:
        one.until_up()
        yield one
    finally:
        log = one.stop()
        assert "Traceback" not in log, log


@pytest.fixture(scope="module")
def sidecar(tmp_path_factory: pytest.TempPathFactory, redis_address: str
            ) -> Iterator[GrpcSidecar]:
    yield from running(tmp_path_factory.mktemp("grpc"), redis_address)


@pytest.fixture
def client(sidecar: GrpcSidecar) -> Iterator[DaprClient]:
    with sidecar.client() as found:
        yield found
