"""Binding spans of a real sidecar (in process, an embedded broker, a real aiohttp app, a
local storage output and a cron input), exported over OTLP/HTTP to the test's receiver."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from aiohttp import web

from tests.serving import serving
from tests.tracing.conftest import Receiver
from tests.tracing.test_sidecar_traces import CALLER_SPAN, TRACE_ID, TRACEPARENT, WAIT, otel
from tests.workers import until
from tether.cli.run import free_port
from tether.sidecar.server import Sidecar

APP_ID = "binder"
CLIENT, PRODUCER, CONSUMER = 3, 4, 5


@dataclass
class CronApp:
    """The app: the headers of each cron event posted to /tick."""

    port: int
    ticks: list[dict[str, str]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def cron_app() -> AsyncIterator[CronApp]:
    got = CronApp(free_port())

    async def tick(request: web.Request) -> web.Response:
        got.ticks.append(dict(request.headers))
        got.arrived.set()
        return web.Response(status=200)

    application = web.Application()
    application.router.add_post("/tick", tick)
    async with serving(application, got.port):
        yield got


def component(name: str, kind: str, **metadata: str) -> dict[str, Any]:
    return {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": name},
            "spec": {"type": kind, "version": "v1",
                     "metadata": [{"name": k, "value": v} for k, v in metadata.items()]}}


def write(folder: Path, receiver: Receiver, *, cron: bool) -> tuple[Path, Path]:
    resources = folder / "resources"
    resources.mkdir()
    components = [component("pubsub", "pubsub.tether.embedded", path=str(folder / "b.db")),
                  component("files", "bindings.localstorage", rootPath=str(folder / "files"))]
    if cron:
        components.append(component("tick", "bindings.cron", schedule="@every 1s"))
    (resources / "components.yaml").write_text(yaml.safe_dump_all(components))
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
        "metadata": {"name": "tracing"}, "spec": {"tracing": otel(receiver)}}))
    return resources, config


async def test_output_calls_are_client_spans_of_the_api_call_sync_or_async(
    tmp_path: Path, cron_app: CronApp, otlp_receiver: Receiver,
) -> None:
    resources, config = write(tmp_path, otlp_receiver, cron=False)
    sidecar = Sidecar(APP_ID, free_port(), [resources], config_file=config,
                      app_port=cron_app.port)
    await sidecar.start()
    try:
        await sidecar.start_subscriptions(cron_app.port, drain_timeout=5)
        url = f"http://127.0.0.1:{sidecar.http_port}/v1.0/bindings/files"
        async with aiohttp.ClientSession() as session:
            for name, extra in (("now.txt", {}), ("later.txt", {"async": "true"})):
                body = {"operation": "create", "data": "hi",
                        "metadata": {"fileName": name, **extra}}
                async with session.post(url, data=json.dumps(body),
                                        headers={"traceparent": TRACEPARENT}) as answer:
                    assert answer.status in (200, 202, 204)
        await until((tmp_path / "files" / "later.txt").exists, "the async call")
    finally:
        await sidecar.stop()
    servers = otlp_receiver.named("POST /v1.0/bindings")
    calls = otlp_receiver.named("binding files create")
    [delivery] = otlp_receiver.named("process tether.binding.out.")
    assert len(servers) == len(calls) == 2
    assert {s.trace_id for s in (*servers, *calls, delivery)} == {TRACE_ID}
    assert {s.parent_id for s in servers} == {CALLER_SPAN}
    [later] = [c for c in calls if c.parent_id == delivery.span_id]
    [now] = [c for c in calls if c is not later]
    # synchronous: the API call -> the binding call
    assert (now.kind, now.parent_id in {s.span_id for s in servers}) == (CLIENT, True)
    assert now.attributes["dapr.binding.operation"] == "create"
    assert now.attributes["dapr.component_type"] == "bindings.localstorage"
    # async: the API call -> the delivery of the queued call -> the binding call
    assert delivery.parent_id in {s.span_id for s in servers} - {now.parent_id}
    assert later.kind == CLIENT


async def test_an_input_event_is_a_producer_span_the_delivery_to_the_app_continues(
    tmp_path: Path, cron_app: CronApp, otlp_receiver: Receiver,
) -> None:
    resources, config = write(tmp_path, otlp_receiver, cron=True)
    sidecar = Sidecar(APP_ID, free_port(), [resources], config_file=config,
                      app_port=cron_app.port)
    await sidecar.start()
    try:
        await sidecar.start_subscriptions(cron_app.port, drain_timeout=5)
        async with asyncio.timeout(WAIT):
            while not cron_app.ticks:
                cron_app.arrived.clear()
                await cron_app.arrived.wait()
    finally:
        await sidecar.stop()
    reads = {s.span_id: s for s in otlp_receiver.named("binding tick input")}
    deliveries = {s.span_id: s for s in otlp_receiver.named("process tether.binding.tick")}
    headers = cron_app.ticks[0]
    trace_id, delivered = headers["traceparent"].split("-")[1:3]
    delivery = deliveries[delivered]  # the app's call names the delivery span
    read = reads[delivery.parent_id]  # whose parent is the source's emit
    assert (delivery.kind, read.kind) == (CONSUMER, PRODUCER)
    assert read.parent_id == ""  # a new trace per source message
    assert read.trace_id == delivery.trace_id == trace_id
    assert read.attributes["dapr.component_type"] == "bindings.cron"
    assert delivery.attributes["messaging.message.id"] == read.attributes["messaging.message.id"]
