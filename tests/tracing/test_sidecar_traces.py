"""Traces of a real sidecar (in process, a real embedded broker, a real aiohttp app),
exported over OTLP/HTTP to a receiver the test runs: publish -> delivery -> app."""

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
from tether.cli.run import free_port
from tether.platform import tracing
from tether.sidecar.server import Sidecar

APP_ID = "shop"
WAIT = 60.0
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER_SPAN = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CALLER_SPAN}-01"
#: OpenTelemetry's SpanKind values in OTLP
SERVER, CLIENT, PRODUCER, CONSUMER = 2, 3, 4, 5


@dataclass
class App:
    """The app: what reached its /orders route (headers and body)."""

    port: int
    received: list[tuple[dict[str, str], dict[str, Any]]] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    #: the headers of each call to its /hello method (service invocation)
    calls: list[dict[str, str]] = field(default_factory=list)

    async def until(self, count: int) -> None:
        async with asyncio.timeout(WAIT):
            while len(self.received) < count:
                self.arrived.clear()
                await self.arrived.wait()


@pytest.fixture
async def app() -> AsyncIterator[App]:
    got = App(free_port())

    async def orders(request: web.Request) -> web.Response:
        got.received.append((dict(request.headers), await request.json()))
        got.arrived.set()
        return web.json_response({"status": "SUCCESS"})

    async def hello(request: web.Request) -> web.Response:
        got.calls.append(dict(request.headers))
        return web.json_response({"hello": True})

    application = web.Application()
    application.router.add_post("/orders", orders)
    application.router.add_post("/hello", hello)
    async with serving(application, got.port):
        yield got


def write_resources(folder: Path, tracing_spec: dict[str, Any]) -> tuple[Path, Path]:
    resources = folder / "resources"
    resources.mkdir()
    (resources / "pubsub.yaml").write_text(yaml.safe_dump_all([
        {"apiVersion": "dapr.io/v1alpha1", "kind": "Component", "metadata": {"name": "pubsub"},
         "spec": {"type": "pubsub.tether.embedded", "version": "v1", "metadata": [
             {"name": "path", "value": str(folder / "broker.db")}]}},
        {"apiVersion": "dapr.io/v2alpha1", "kind": "Subscription",
         "metadata": {"name": "orders"},
         "spec": {"pubsubname": "pubsub", "topic": "orders", "routes": {"default": "/orders"}}},
    ]))
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
        "metadata": {"name": "tracing"}, "spec": {"tracing": tracing_spec},
    }))
    return resources, config


async def run_sidecar(folder: Path, app: App, tracing_spec: dict[str, Any],
                      calls: list[dict[str, str]], invoke: dict[str, str] | None = None) -> None:
    """A sidecar publishing one event per call (each call's extra headers), until the app
    got them all, then invoking the app's /hello with ``invoke``'s headers if given;
    stopped after (which exports the spans left)."""
    resources, config = write_resources(folder, tracing_spec)
    sidecar = Sidecar(APP_ID, free_port(), [resources], config_file=config, app_port=app.port)
    await sidecar.start()
    try:
        await sidecar.start_subscriptions(app.port, drain_timeout=5)
        url = f"http://127.0.0.1:{sidecar.http_port}/v1.0/publish/pubsub/orders"
        async with aiohttp.ClientSession() as session:
            for n, headers in enumerate(calls):
                async with session.post(url, data=json.dumps({"n": n}), headers={
                        "Content-Type": "application/json", **headers}) as answer:
                    assert answer.status == 204
            await app.until(len(calls))
            if invoke is not None:
                async with session.post(
                        f"http://127.0.0.1:{sidecar.http_port}/v1.0/invoke/{APP_ID}/method/hello",
                        data=b"{}", headers=invoke) as answer:
                    assert answer.status == 200
    finally:
        await sidecar.stop()


def otel(receiver: Receiver, rate: str = "1") -> dict[str, Any]:
    return {"samplingRate": rate,
            "otel": {"endpointAddress": receiver.endpoint, "protocol": "http",
                     "isSecure": False}}


async def test_delivery_is_a_child_of_the_publish_in_the_callers_trace(
    tmp_path: Path, app: App, otlp_receiver: Receiver,
) -> None:
    await run_sidecar(tmp_path, app, otel(otlp_receiver), [{"traceparent": TRACEPARENT}])
    [server] = otlp_receiver.named("POST /v1.0/publish")
    [publish] = otlp_receiver.named("publish orders")
    [delivery] = otlp_receiver.named("process orders")
    assert {s.service for s in (server, publish, delivery)} == {APP_ID}
    assert {s.trace_id for s in (server, publish, delivery)} == {TRACE_ID}
    # the caller's span -> the API call -> the publish -> the delivery
    assert (server.kind, server.parent_id) == (SERVER, CALLER_SPAN)
    assert server.attributes["http.route"] == "/v1.0/publish/{pubsub}/{topic}"
    assert server.attributes["http.response.status_code"] == 204
    assert (publish.kind, publish.parent_id) == (PRODUCER, server.span_id)
    assert publish.attributes["messaging.destination.name"] == "orders"
    assert (delivery.kind, delivery.parent_id) == (CONSUMER, publish.span_id)
    [(headers, event)] = app.received
    assert delivery.attributes["messaging.message.id"] == event["id"]
    assert delivery.attributes["dapr.outcome"] == "SUCCESS"
    # the app's call is a child of the delivery; the event names the publish, as in Dapr
    assert headers["traceparent"] == f"00-{TRACE_ID}-{delivery.span_id}-01"
    assert event["traceparent"] == f"00-{TRACE_ID}-{publish.span_id}-01"
    assert event["traceid"] == event["traceparent"]


async def test_a_call_without_traceparent_starts_a_trace(
    tmp_path: Path, app: App, otlp_receiver: Receiver,
) -> None:
    await run_sidecar(tmp_path, app, otel(otlp_receiver), [{}, {"traceparent": "broken"}])
    servers = otlp_receiver.named("POST /v1.0/publish")
    assert len(servers) == 2
    assert all(s.parent_id == "" for s in servers)  # roots: a new trace each
    assert len({s.trace_id for s in servers}) == 2
    deliveries = otlp_receiver.named("process orders")
    assert {d.trace_id for d in deliveries} == {s.trace_id for s in servers}
    for headers, event in app.received:
        assert tracing.trace_id(event["traceparent"]) == tracing.trace_id(
            headers["traceparent"])
        assert tracing.trace_id(event["traceparent"]) in {s.trace_id for s in servers}


async def test_sampling_rate_zero_records_nothing_yet_events_carry_a_trace(
    tmp_path: Path, app: App, otlp_receiver: Receiver,
) -> None:
    await run_sidecar(tmp_path, app, otel(otlp_receiver, "0"),
                      [{}, {"traceparent": TRACEPARENT}])
    assert otlp_receiver.spans == []
    assert tracing.tracer(APP_ID) is None
    (_, fresh), (headers, given) = app.received
    # no traceparent: a new (unsampled) one; given: passed through as it was
    assert tracing.is_valid(fresh["traceparent"]) and fresh["traceid"] == fresh["traceparent"]
    assert fresh["traceparent"].endswith("-00")
    assert given["traceparent"] == given["traceid"] == headers["traceparent"] == TRACEPARENT


async def test_invocation_spans_chain_caller_to_callee_and_the_app(
    tmp_path: Path, app: App, otlp_receiver: Receiver,
) -> None:
    await run_sidecar(tmp_path, app, otel(otlp_receiver), [],
                      invoke={"traceparent": TRACEPARENT})
    [server] = otlp_receiver.named("POST /v1.0/invoke")
    [client] = otlp_receiver.named(f"invoke {APP_ID}")
    [callee] = otlp_receiver.named(f"invoked {APP_ID}")
    assert {s.trace_id for s in (server, client, callee)} == {TRACE_ID}
    assert server.parent_id == CALLER_SPAN
    assert (client.kind, client.parent_id) == (CLIENT, server.span_id)
    assert (callee.kind, callee.parent_id) == (SERVER, client.span_id)
    assert client.attributes["rpc.method"] == callee.attributes["rpc.method"] == "hello"
    assert callee.attributes["http.response.status_code"] == 200
    [headers] = app.calls
    assert headers["traceparent"] == f"00-{TRACE_ID}-{callee.span_id}-01"
