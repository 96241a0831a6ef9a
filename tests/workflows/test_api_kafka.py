"""The workflow HTTP API with a Kafka pub/sub component (the session's tansu broker) and
history in SQLite: the sidecar publishes through its Kafka broker, the runtime consumes."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.workflows import api_app
from tests.workflows.api_wait import wait_until
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.platform.workflows.durable import RuntimeConfig
from tether.sidecar import create_app
from tether.sidecar.workflows import workflow_block

V1 = "/v1.0/workflows/dapr"
# tansu completes a group join in about session_timeout / 2: keep it short
KAFKA_OPTIONS = "session_timeout_ms=6000&heartbeat_interval_ms=1000"
Client = TestClient[Any, Any]


@pytest.fixture
async def client(kafka_address: str, tmp_path: Path) -> AsyncIterator[Client]:
    comps = [
        Component(name="kafka", type="pubsub.kafka", metadata={"brokers": kafka_address}),
        Component(name="wfstate", type="state.sqlite",
                  metadata={"connectionString": str(tmp_path / "wf.db"),
                            "actorStateStore": "true"}),
    ]
    registry = PubSubRegistry(comps)
    block = workflow_block(BlockContext("app", comps, registry))
    app = create_app(registry, app_id="app", components=comps, blocks=[block])
    runtime = api_app.build(RuntimeConfig(broker_url=f"kafka://{kafka_address}?{KAFKA_OPTIONS}",
                                          state_store=comps[1], resources_path=None,
                                          app_id="app"))
    await runtime.start_async()
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
            yield test_client
    finally:
        await runtime.shutdown_async()


async def test_start_raise_and_terminate_on_kafka(client: Client) -> None:
    # fresh ids: a shared external Kafka (TETHER_TEST_KAFKA) may hold earlier runs' events
    tag = uuid.uuid4().hex[:8]
    k1, k2, k3 = f"k1-{tag}", f"k2-{tag}", f"k3-{tag}"

    async def status(iid: str, wanted: str) -> Any:
        resp = await client.get(f"{V1}/{iid}")
        body = await resp.json()
        return body if resp.status == 200 and body["runtimeStatus"] == wanted else None

    resp = await client.post(f"{V1}/greet/start?instanceID={k1}", data=json.dumps("kafka"))
    assert resp.status == 202
    done = await wait_until(lambda: status(k1, "COMPLETED"), timeout=180)
    assert done["properties"]["dapr.workflow.output"] == '"hello hello kafka"'

    assert (await client.post(f"{V1}/approval/start?instanceID={k2}", data="2")).status == 202
    await wait_until(lambda: status(k2, "RUNNING"), timeout=180)
    assert (await client.post(f"{V1}/{k2}/raiseEvent/approve", data='"ok"')).status == 202
    done = await wait_until(lambda: status(k2, "COMPLETED"), timeout=180)
    assert done["properties"]["dapr.workflow.output"] == '{"order": 2, "decision": "ok"}'

    assert (await client.post(f"{V1}/sleepy/start?instanceID={k3}")).status == 202
    await wait_until(lambda: status(k3, "RUNNING"), timeout=180)
    assert (await client.post(f"{V1}/{k3}/terminate")).status == 202
    await wait_until(lambda: status(k3, "TERMINATED"), timeout=180)
