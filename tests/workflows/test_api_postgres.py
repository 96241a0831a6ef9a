"""The workflow HTTP API with history in PostgreSQL (the machine's server; the embedded
broker): the Dapr endpoints and Tether's instance list, which uses PostgreSQL's query API."""

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
Client = TestClient[Any, Any]


@pytest.fixture
async def client(postgres_dsn: str, tmp_path: Path) -> AsyncIterator[Client]:
    tag = uuid.uuid4().hex[:10]
    comps = [
        Component(name="pubsub", type="pubsub.tether.embedded",
                  metadata={"path": str(tmp_path / "broker.db")}),
        Component(name="wfstate", type="state.postgresql",
                  metadata={"connectionString": postgres_dsn, "tableName": f"wfapi_{tag}",
                            "metadataTableName": f"wfapi_{tag}_meta",
                            "actorStateStore": "true"}),
    ]
    registry = PubSubRegistry(comps)
    block = workflow_block(BlockContext("app", comps, registry))
    app = create_app(registry, app_id="app", components=comps, blocks=[block])
    runtime = api_app.build(RuntimeConfig(broker_url=f"embedded://{tmp_path / 'broker.db'}",
                                          state_store=comps[1], resources_path=None,
                                          app_id="app"))
    await runtime.start_async()
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
            yield test_client
    finally:
        await runtime.shutdown_async()
        import psycopg

        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            for table in (f"wfapi_{tag}", f"wfapi_{tag}_meta", f"wfapi_{tag}_outbox"):
                conn.execute(f'DROP TABLE IF EXISTS "{table}"')


async def test_start_get_and_list_on_postgresql(client: Client) -> None:
    for n in range(3):
        resp = await client.post(f"{V1}/greet/start?instanceID=pg-{n}", data=json.dumps(n))
        assert resp.status == 202
    resp = await client.post(f"{V1}/approval/start?instanceID=pg-wait", data="{}")
    assert resp.status == 202

    async def listed(status: str, expected: set[str]) -> Any:
        resp = await client.get(f"/v1.0-alpha1/workflows/tether/instances?status={status}")
        assert resp.status == 200
        found = {i["instanceID"] for i in (await resp.json())["instances"]}
        return found == expected

    await wait_until(lambda: listed("COMPLETED", {"pg-0", "pg-1", "pg-2"}))
    await wait_until(lambda: listed("RUNNING", {"pg-wait"}))
    resp = await client.get(f"{V1}/pg-1")
    body = await resp.json()
    assert body["runtimeStatus"] == "COMPLETED"
    assert body["properties"]["dapr.workflow.input"] == "1"
    resp = await client.get("/v1.0-alpha1/workflows/tether/instances?name=approval&limit=5")
    assert [i["instanceID"] for i in (await resp.json())["instances"]] == ["pg-wait"]
