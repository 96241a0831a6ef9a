"""One namespace per app: two apps sharing a broker and a state store each run their own
workflows and activities (a worker never gets the other app's activity tasks), and an app's
sidecar sees that app's instances."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.workflows.runtime_env import EMBEDDED_OPTIONS
from tether.platform.blocks import BlockContext
from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry
from tether.platform.workflows.durable import RuntimeConfig
from tether.platform.workflows.durable.names import (
    APP_ID_ENVS,
    DEFAULT_NAMESPACE,
    NAMESPACE_ENV,
    namespace_for,
)
from tether.sidecar import create_app
from tether.sidecar.workflows import workflow_block
from tether.workers.workflows import WorkflowRuntime

WAIT = 120.0  # a ceiling against hangs on a loaded machine, not a timing assertion
PER_APP = 8


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (NAMESPACE_ENV, *APP_ID_ENVS):
        monkeypatch.delenv(name, raising=False)


def test_the_namespace_comes_from_the_app_id(monkeypatch: pytest.MonkeyPatch) -> None:
    assert namespace_for(None) == DEFAULT_NAMESPACE  # a plain script: the shared default
    assert namespace_for("orders") == "tether.workflow.orders"
    assert namespace_for("a b/c") == "tether.workflow.a_b_c"  # topic-safe
    assert RuntimeConfig().names.namespace == DEFAULT_NAMESPACE
    assert RuntimeConfig(app_id="orders").names.namespace == "tether.workflow.orders"
    monkeypatch.setenv("APP_ID", "billing")  # what `tether run` gives the app
    assert RuntimeConfig().names.namespace == "tether.workflow.billing"
    assert WorkflowRuntime().namespace == "tether.workflow.billing"
    assert RuntimeConfig(app_id="orders").names.namespace == "tether.workflow.orders"
    monkeypatch.setenv(NAMESPACE_ENV, "shared")  # the override
    assert RuntimeConfig(app_id="orders").names.namespace == "shared"
    assert namespace_for("orders") == "shared"
    # what the code says wins over the environment
    assert RuntimeConfig(app_id="orders", namespace="mine").names.namespace == "mine"
    assert WorkflowRuntime(namespace="mine").namespace == "mine"


def _app(app_id: str, broker_url: str, state: Component) -> WorkflowRuntime:
    """An app whose workflow calls an activity only this app has."""
    wfr = WorkflowRuntime(broker_url=broker_url, state_store=state, app_id=app_id,
                          sender_grace=2.0)

    @wfr.activity(name=f"only-{app_id}")
    def only(ctx: object, n: int) -> str:
        return f"{app_id}:{n}"

    @wfr.workflow(name=f"flow-{app_id}")
    def flow(ctx: Any, n: int) -> Any:
        first = yield ctx.call_activity(only, input=n)
        second = yield ctx.call_activity(only, input=n + 1)
        return [first, second]

    return wfr


async def _get(client: TestClient[Any, Any], iid: str) -> tuple[int, Any]:
    resp = await client.get(f"/v1.0/workflows/dapr/{iid}")
    return resp.status, await resp.json()


async def test_two_apps_on_one_broker_and_store(tmp_path: Path) -> None:
    broker_url = f"embedded://{tmp_path}/broker.db?{EMBEDDED_OPTIONS}"
    state = Component(name="wfstate", type="state.sqlite",
                      metadata={"connectionString": str(tmp_path / "state.db"),
                                "actorStateStore": "true"})
    orders, billing = _app("orders", broker_url, state), _app("billing", broker_url, state)
    async with orders, billing:
        assert orders.namespace != billing.namespace
        started: dict[str, list[tuple[str, int]]] = {"orders": [], "billing": []}
        for app_id, wfr in (("orders", orders), ("billing", billing)):
            client = wfr.client()
            for n in range(PER_APP):
                iid = await client.schedule_new_workflow(f"flow-{app_id}", input=n)
                started[app_id].append((iid, n))
        for app_id, wfr in (("orders", orders), ("billing", billing)):
            client = wfr.client()
            for iid, n in started[app_id]:
                done = await client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
                assert done is not None
                assert done.runtime_status.value == "COMPLETED", done.failure_details
                assert done.output() == [f"{app_id}:{n}", f"{app_id}:{n + 1}"]
        # each app's client sees only its own instances
        assert await billing.client().get_workflow_state(started["orders"][0][0]) is None

        # the sidecar of "orders" (its app id from the block context) sees orders' instances
        pubsub = Component(name="pubsub", type="pubsub.tether.embedded",
                           metadata={"path": str(tmp_path / "broker.db")})
        comps = [pubsub, state]
        registry = PubSubRegistry(comps)
        block = workflow_block(BlockContext("orders", comps, registry))
        app = create_app(registry, app_id="orders", components=comps, blocks=[block])
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            status, body = await _get(http, started["orders"][0][0])
            assert status == 200 and body["runtimeStatus"] == "COMPLETED"
            assert body["workflowName"] == "flow-orders"
            status, body = await _get(http, started["billing"][0][0])
            assert status == 404 and body["errorCode"] == "ERR_INSTANCE_ID_NOT_FOUND"
            # and starts orders' workflows, which orders' workers run
            resp = await http.post("/v1.0/workflows/dapr/flow-orders/start?instanceID=via-api",
                                   json=41)
            assert resp.status == 202
            done = await orders.client().wait_for_workflow_completion(
                "via-api", timeout_in_seconds=WAIT)
            assert done is not None and done.output() == ["orders:41", "orders:42"]
