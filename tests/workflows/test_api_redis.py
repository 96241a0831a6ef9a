"""The workflow HTTP API on Redis (Redis Streams broker, Redis state store marked
``actorStateStore``), on the session's real redis-server: the Dapr endpoints work, and the
instance list, which needs the query API Redis lacks, answers 501 ERR_LIST_WORKFLOWS."""

from __future__ import annotations

import json
import os
import random
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.workflows import api_app
from tests.workflows.api_wait import wait_until
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.platform.pubsub.registry import broker_spec
from tether.platform.workflows.durable import RuntimeConfig
from tether.sidecar import create_app
from tether.sidecar.workflows import workflow_block

V1 = "/v1.0/workflows/dapr"
Client = TestClient[Any, Any]


@pytest.fixture
async def client(redis_address: str) -> AsyncIterator[Client]:
    db = str(random.randint(1, 15))  # the other tests of the session use db 0
    comps = [
        Component(name="pubsub", type="pubsub.redis",
                  metadata={"redisHost": redis_address, "redisDB": db}),
        Component(name="wfstate", type="state.redis",
                  metadata={"redisHost": redis_address, "redisDB": db,
                            "actorStateStore": "true"}),
    ]
    registry = PubSubRegistry(comps)
    block = workflow_block(BlockContext("app", comps, registry))
    app = create_app(registry, app_id="app", components=comps, blocks=[block])
    runtime = api_app.build(RuntimeConfig(broker_url=broker_spec(comps[0]).url,
                                          state_store=comps[1], resources_path=None,
                                          app_id="app"))
    await runtime.start_async()
    try:
        async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
            yield test_client
    finally:
        await runtime.shutdown_async()
        if not os.environ.get("TETHER_TEST_REDIS"):  # only the session's own server
            import redis.asyncio as aioredis

            conn = aioredis.from_url(f"redis://{redis_address}/{db}")
            await conn.flushdb()
            await conn.aclose()


async def state(client: Client, iid: str) -> Any:
    resp = await client.get(f"{V1}/{iid}")
    return await resp.json() if resp.status == 200 else None


async def test_dapr_endpoints_on_redis(client: Client) -> None:
    tag = uuid.uuid4().hex[:8]  # fresh ids: an external test Redis may hold earlier runs
    r1, r2 = f"r1-{tag}", f"r2-{tag}"
    resp = await client.post(f"{V1}/greet/start?instanceID={r1}", data=json.dumps("red"))
    assert resp.status == 202 and await resp.json() == {"instanceID": r1}

    async def completed() -> Any:
        body = await state(client, r1)
        return body if body and body["runtimeStatus"] == "COMPLETED" else None

    done = await wait_until(completed)
    assert done["properties"]["dapr.workflow.output"] == '"hello hello red"'
    resp = await client.post(f"{V1}/approval/start?instanceID={r2}", data="1")
    assert resp.status == 202
    resp = await client.post(f"{V1}/approval/start?instanceID={r2}", data="1")
    assert resp.status == 409 and (await resp.json())["errorCode"] == "ERR_START_WORKFLOW"
    resp = await client.get(f"/v1.0-alpha1/workflows/tether/{r1}/history")
    assert resp.status == 200
    assert (await resp.json())["events"][-1]["type"] == "ExecutionCompleted"
    assert (await client.post(f"{V1}/{r1}/purge")).status == 202
    assert (await client.get(f"{V1}/{r1}")).status == 404


async def test_the_list_needs_a_query_capable_store(client: Client) -> None:
    resp = await client.get("/v1.0-alpha1/workflows/tether/instances")
    assert resp.status == 501
    body = await resp.json()
    assert body["errorCode"] == "ERR_LIST_WORKFLOWS" and "query" in body["message"]
