"""A sidecar app with the workflow block on the embedded broker and a SQLite state store,
and a WorkflowRuntime (tests/workflows/api_app.py) on the same broker and store."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from tests.workflows import api_app
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.platform.workflows.durable import RuntimeConfig
from tether.sidecar import create_app
from tether.sidecar.workflows import workflow_block
from tether.workers.workflows import WorkflowRuntime

Client = TestClient[Any, Any]


def components(tmp: Path) -> list[Component]:
    return [
        Component(name="pubsub", type="pubsub.tether.embedded",
                  metadata={"path": str(tmp / "broker.db")}),
        Component(name="other", type="state.sqlite",
                  metadata={"connectionString": str(tmp / "other.db")}),
        Component(name="wfstate", type="state.sqlite",
                  metadata={"connectionString": str(tmp / "wf.db"), "actorStateStore": "true"}),
    ]


@dataclass
class Env:
    client: Client
    tmp: Path
    runtime: WorkflowRuntime | None = None

    def runtime_config(self) -> RuntimeConfig:
        # what the app finds through its sidecar: the same broker and the actor state store
        comps = components(self.tmp)
        return RuntimeConfig(broker_url=f"embedded://{self.tmp / 'broker.db'}",
                             state_store=comps[2], resources_path=None, app_id="app")

    async def start_runtime(self) -> WorkflowRuntime:
        self.runtime = api_app.build(self.runtime_config())
        await self.runtime.start_async()
        return self.runtime

    async def stop_runtime(self) -> None:
        if self.runtime is not None:
            await self.runtime.shutdown_async()
            self.runtime = None


@asynccontextmanager
async def running(tmp_path: Path) -> AsyncIterator[Env]:
    comps = components(tmp_path)
    registry = PubSubRegistry(comps)
    block = workflow_block(BlockContext("app", comps, registry))
    app = create_app(registry, app_id="app", components=comps, blocks=[block])
    async with TestClient(TestServer(app, host="127.0.0.1")) as client:
        e = Env(client, tmp_path)
        await e.start_runtime()
        try:
            yield e
        finally:
            await e.stop_runtime()
