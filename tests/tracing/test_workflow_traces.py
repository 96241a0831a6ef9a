"""Workflow spans: a real sidecar (in process) starts an instance through Dapr's HTTP API, a
WorkflowRuntime in this process runs it (an activity, then a child workflow with its own
activity) on an embedded broker and a SQLite store; spans exported over OTLP/HTTP to the
test's receiver. The instance keeps its start span's context, which every step continues."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from tests.tracing.conftest import Receiver
from tests.tracing.test_sidecar_traces import CALLER_SPAN, TRACE_ID, TRACEPARENT, WAIT, otel
from tether.cli.run import free_port
from tether.platform import tracing
from tether.platform.components import Component
from tether.platform.workflows.durable import RuntimeConfig
from tether.sidecar.server import Sidecar
from tether.workers.workflows import WorkflowRuntime

APP_ID = "flows"
CLIENT, CONSUMER, INTERNAL = 3, 5, 1
UNSET, ERROR = 0, 2  # OTLP status codes


def runtime(tmp: Path) -> WorkflowRuntime:
    store = Component(name="wfstate", type="state.sqlite",
                      metadata={"connectionString": str(tmp / "wf.db"),
                                "actorStateStore": "true"})
    wfr = WorkflowRuntime(RuntimeConfig(broker_url=f"embedded://{tmp / 'broker.db'}",
                                        state_store=store, resources_path=None, app_id=APP_ID))

    @wfr.activity(name="charge")
    def charge(ctx: Any, amount: int) -> int:
        return amount

    @wfr.activity(name="pack")
    def pack(ctx: Any, what: str) -> str:
        raise ValueError(f"no box for {what}")

    @wfr.workflow(name="ship")
    def ship(ctx: Any, what: str) -> Any:
        try:
            yield ctx.call_activity(pack, input=what)
        except Exception:
            return "unpacked"
        return "packed"

    @wfr.workflow(name="order")
    def order(ctx: Any, amount: int) -> Any:
        charged = yield ctx.call_activity(charge, input=amount)
        shipped = yield ctx.call_child_workflow(ship, input="book",
                                                instance_id=f"{ctx.instance_id}-ship")
        return {"charged": charged, "shipped": shipped}

    return wfr


def write_resources(folder: Path, receiver: Receiver) -> tuple[Path, Path]:
    resources = folder / "resources"
    resources.mkdir()
    (resources / "components.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "pubsub"},
         "spec": {"type": "pubsub.tether.embedded", "version": "v1", "metadata": [
             {"name": "path", "value": str(folder / "broker.db")}]}},
        {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "wfstate"},
         "spec": {"type": "state.sqlite", "version": "v1", "metadata": [
             {"name": "connectionString", "value": str(folder / "wf.db")},
             {"name": "actorStateStore", "value": "true"}]}},
    ]))
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
        "metadata": {"name": "tracing"}, "spec": {"tracing": otel(receiver)}}))
    return resources, config


async def completed(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with asyncio.timeout(WAIT):
        while True:
            async with session.get(url) as answer:
                body = await answer.json()
            if body.get("runtimeStatus") in ("COMPLETED", "FAILED"):
                return dict(body)
            await asyncio.sleep(0.05)


async def test_steps_and_activities_continue_the_instances_start_span(
    tmp_path: Path, otlp_receiver: Receiver,
) -> None:
    resources, config = write_resources(tmp_path, otlp_receiver)
    sidecar = Sidecar(APP_ID, free_port(), [resources], config_file=config)
    await sidecar.start()
    wfr = runtime(tmp_path)
    try:
        await wfr.start_async()  # the sidecar's tracer: the same app in this process
        base = f"http://127.0.0.1:{sidecar.http_port}/v1.0/workflows/dapr"
        async with aiohttp.ClientSession() as session:
            async with session.post(f"{base}/order/start?instanceID=o1", data=b"5",
                                    headers={"traceparent": TRACEPARENT}) as answer:
                assert answer.status == 202
            state = await completed(session, f"{base}/o1")
        assert state["runtimeStatus"] == "COMPLETED"
    finally:
        await wfr.shutdown_async()
        await sidecar.stop()
    # all but the status polls (API calls of their own) are in the caller's trace
    spans = [s for s in otlp_receiver.spans if not s.name.startswith("GET ")]
    assert {s.trace_id for s in spans} == {TRACE_ID}

    # the API call -> the start, which the instance keeps
    [server] = otlp_receiver.named("POST /v1.0/workflows")
    [start] = otlp_receiver.named("start workflow order")
    assert server.parent_id == CALLER_SPAN
    assert (start.kind, start.parent_id) == (CLIENT, server.span_id)
    assert start.attributes["dapr.workflow.instance_id"] == "o1"

    # every step of the parent is a child of the start span
    steps = otlp_receiver.named("orchestration order")
    assert len(steps) >= 3  # started, the charge's result, the child's result
    assert {(s.kind, s.parent_id) for s in steps} == {(INTERNAL, start.span_id)}
    assert {s.attributes["dapr.workflow.instance_id"] for s in steps} == {"o1"}
    assert "COMPLETED" in {s.attributes.get("dapr.workflow.status") for s in steps}

    # the activity is a child of the step that scheduled it
    [charge] = otlp_receiver.named("activity charge")
    assert charge.kind == CONSUMER
    assert charge.parent_id in {s.span_id for s in steps}
    assert charge.attributes["dapr.workflow.task_id"] == 0

    # the child instance continues the parent's step that started it; its failing activity
    # is an error span under the child's step
    child_steps = otlp_receiver.named("orchestration ship")
    assert child_steps
    [child_parent] = {s.parent_id for s in child_steps}
    assert child_parent in {s.span_id for s in steps}
    [pack] = otlp_receiver.named("activity pack")
    assert pack.parent_id in {s.span_id for s in child_steps}
    assert pack.attributes["dapr.workflow.instance_id"] == "o1-ship"
    assert (pack.status, charge.status) == (ERROR, UNSET)


async def test_a_runtime_of_its_own_traces_as_the_otel_variables_say(
    tmp_path: Path, otlp_receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{otlp_receiver.endpoint}")
    wfr = runtime(tmp_path)
    async with wfr:
        assert tracing.tracer(APP_ID) is not None
        client = wfr.client()
        iid = await client.schedule_new_workflow("order", input=3, instance_id="o2",
                                                 trace={"traceparent": TRACEPARENT})
        state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
        assert state is not None and state.runtime_status.value == "COMPLETED"
    assert tracing.tracer(APP_ID) is None  # stopped with the runtime, its spans exported
    assert {s.service for s in otlp_receiver.spans} == {APP_ID}
    assert {s.trace_id for s in otlp_receiver.spans} == {TRACE_ID}
    [start] = otlp_receiver.named("start workflow order")
    assert start.parent_id == CALLER_SPAN
    steps = otlp_receiver.named("orchestration order")
    assert steps and {s.parent_id for s in steps} == {start.span_id}
    [charge] = otlp_receiver.named("activity charge")
    assert charge.parent_id in {s.span_id for s in steps}
