"""``tether run`` serving Prometheus series on its metrics port (docs/observability.md):
the counters match what the test did, and ``--enable-metrics=false`` opens no port."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.platform.test_run_delivery import Run, runs  # noqa: F401 - the fixture
from tether.cli.run import free_port

N = 5
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Series:
    """Every sample of ``GET /metrics``, parsed by prometheus_client's own parser."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    return series.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_publishes_deliveries_and_requests(
    tmp_path: Path, runs: list[Run]  # noqa: F811 - the fixture
) -> None:
    port = free_port()
    run = Run(tmp_path, "programmatic", "--metrics-port", str(port))
    runs.append(run)
    run.subscriptions()
    for n in range(N):
        run.publish({"kind": "gadget", "n": n})
    run.publish({"kind": "flaky", "n": N})  # RETRY once, then SUCCESS
    run.deliveries(N + 2)
    topic = {"app_id": "shop", "component": "pubsub", "topic": "orders"}

    def settled() -> Series | None:
        series = scrape(port)
        done = value(series, "dapr_component_pubsub_ingress_count_total",
                     process_status="success", **topic)
        return series if done >= N + 1 else None

    series = run.until("every delivery counted", settled)
    ingress = "dapr_component_pubsub_ingress_count_total"
    assert value(series, ingress, process_status="success", **topic) == N + 1
    assert value(series, ingress, process_status="retry", **topic) == 1
    assert value(series, ingress, process_status="drop", **topic) == 0
    assert value(series, "dapr_component_pubsub_ingress_latencies_count",
                 process_status="success", **topic) == N + 1
    assert value(series, "dapr_component_pubsub_egress_count_total", success="true",
                 **topic) == N + 1
    assert value(series, "dapr_component_pubsub_egress_latencies_count", success="true",
                 **topic) == N + 1
    assert value(series, "tether_pubsub_retries_total", **topic) == 1
    assert value(series, "tether_pubsub_dead_lettered_total", **topic) == 0
    assert value(series, "tether_pubsub_deliveries_in_flight", **topic) == 0
    # the route's template, never the raw path (the topic is not in the label)
    publish = {"app_id": "shop", "method": "POST", "path": "/v1.0/publish/{pubsub}/{topic}",
               "status": "204"}
    assert value(series, "dapr_http_server_request_count_total", **publish) == N + 1
    assert value(series, "dapr_http_server_latency_count", **publish) == N + 1
    assert not [key for key in series if "orders" in dict(key[1]).get("path", "")]
    # a 404 is counted under one label, whatever path was asked
    for path in ("/nowhere/1", "/nowhere/2"):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{run.http_port}{path}", timeout=10)
        except urllib.error.HTTPError as exc:
            assert exc.code == 404
    series = scrape(port)
    assert value(series, "dapr_http_server_request_count_total", app_id="shop", method="GET",
                 path="unmatched", status="404") == 2
    run.proc.terminate()
    code, _, log = run.finish()
    assert code == 0, log
    assert f"metrics of app 'shop' on http://127.0.0.1:{port}/metrics" in log


def test_enable_metrics_false_opens_no_port(tmp_path: Path, runs: list[Run]) -> None:  # noqa: F811
    port = free_port()
    run = Run(tmp_path, "programmatic", "--metrics-port", str(port), "--enable-metrics=false")
    runs.append(run)
    run.subscriptions()  # the sidecar is up and delivering
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0  # refused: nothing listens
    run.proc.terminate()
    code, _, log = run.finish()
    assert code == 0, log
    assert "/metrics" not in log
