"""``tether worker`` (a real process tree) and ``tether.App`` (in process) trace as the
OTEL_* variables say: a delivery span per event, a publish span per ``app.publish`` (a child
of the delivery whose handler publishes), exported over OTLP/HTTP to the test's receiver."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.tracing.conftest import Receiver
from tests.tracing.test_sidecar_traces import CALLER_SPAN, TRACE_ID, TRACEPARENT, WAIT
from tests.tracing.traced_app import app as traced_app
from tests.workers import until
from tether.brokers import open_broker
from tether.platform import tracing
from tether.platform.events import CloudEvent

ROOT = Path(__file__).resolve().parents[2]
PRODUCER, CONSUMER = 4, 5


def otel_env(receiver: Receiver) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{receiver.endpoint}",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}


def handled(out: Path) -> list[str]:
    return out.read_text().splitlines() if out.exists() else []


def assert_chain(receiver: Receiver, out: Path) -> None:
    """The publisher's trace: process orders -> publish shipments -> process shipments."""
    [first] = receiver.named("process orders")
    [publish] = receiver.named("publish shipments")
    [second] = receiver.named("process shipments")
    assert {s.service for s in (first, publish, second)} == {"traced"}
    assert {s.trace_id for s in (first, publish, second)} == {TRACE_ID}
    assert (first.kind, first.parent_id) == (CONSUMER, CALLER_SPAN)
    assert (publish.kind, publish.parent_id) == (PRODUCER, first.span_id)
    assert (second.kind, second.parent_id) == (CONSUMER, publish.span_id)
    [line] = handled(out)
    event_id, traceparent = line.split()
    assert second.attributes["messaging.message.id"] == event_id
    assert traceparent == f"00-{TRACE_ID}-{publish.span_id}-01"


async def publish_order(url: str) -> None:
    async with open_broker(url) as broker:
        await broker.publish("orders", CloudEvent(type="test", source="test", data={},
                                                  extensions={"traceparent": TRACEPARENT}))


async def test_tether_worker_exports_its_spans_to_the_otel_endpoint(
    tmp_path: Path, otlp_receiver: Receiver,
) -> None:
    url = f"embedded://{tmp_path / 'broker.db'}"
    out = tmp_path / "handled.txt"
    env = {**os.environ, **otel_env(otlp_receiver), "TETHER_TRACED_OUT": str(out)}
    log = (tmp_path / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "worker", "tests.tracing.traced_app:app",
         "--broker", url, "--grace", "20"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        await publish_order(url)
        await until(lambda: bool(handled(out)), "the shipment handled", WAIT)
        worker.send_signal(signal.SIGTERM)  # the spans left are exported on the way out
        assert await asyncio.to_thread(worker.wait, WAIT) == 0
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert_chain(otlp_receiver, out)


async def test_app_reads_the_otel_variables_and_stops_tracing_with_itself(
    tmp_path: Path, otlp_receiver: Receiver, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in otel_env(otlp_receiver).items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "handled.txt"
    monkeypatch.setenv("TETHER_TRACED_OUT", str(out))
    url = f"embedded://{tmp_path / 'broker.db'}"
    traced_app.configure(broker=url)
    async with traced_app.run():
        assert tracing.tracer("traced") is not None
        await publish_order(url)
        await until(lambda: bool(handled(out)), "the shipment handled", WAIT)
    assert tracing.tracer("traced") is None
    assert_chain(otlp_receiver, out)


async def test_without_the_otel_variables_an_app_makes_no_tracer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    out = tmp_path / "handled.txt"
    monkeypatch.setenv("TETHER_TRACED_OUT", str(out))
    url = f"embedded://{tmp_path / 'broker.db'}"
    traced_app.configure(broker=url)
    async with traced_app.run():
        assert tracing.tracer("traced") is None
        await publish_order(url)
        await until(lambda: bool(handled(out)), "the shipment handled", WAIT)
    [line] = handled(out)
    # untraced, the published event still carries a trace context of its own
    assert tracing.is_valid(line.split()[1])
