"""``tether run`` delivering published events to a real app process, as Dapr does."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.cli.run import free_port

WAIT = 30.0  # a ceiling for things that should happen, never an assertion about speed

# an aiohttp app: answers /dapr/subscribe (argv[1] == "programmatic") or 404, records every
# delivery to deliveries.jsonl; kind "flaky" gets RETRY once, kind "slow" waits for a file
APP = r"""
import asyncio, json, os, signal, sys
from pathlib import Path
from aiohttp import web

LOG = Path("deliveries.jsonl")
attempts = {}

def record(**item):
    with LOG.open("a") as f:
        f.write(json.dumps(item) + "\n")

async def subscribe(request):
    if sys.argv[1] != "programmatic":
        return web.Response(status=404)
    return web.json_response([{
        "pubsubname": "pubsub", "topic": "orders",
        "routes": {"rules": [{"match": 'event.data.kind == "widget"', "path": "/widgets"}],
                   "default": "/orders"},
    }])

async def deliver(request):
    body = await request.json()
    attempts[body["id"]] = attempts.get(body["id"], 0) + 1
    record(path=request.path, content_type=request.content_type,
           attempt=attempts[body["id"]], body=body)
    kind = body["data"]["kind"]
    if kind == "flaky" and attempts[body["id"]] == 1:
        return web.json_response({"status": "RETRY"})
    if kind == "slow":
        Path("slow.started").touch()
        while not Path("slow.release").exists():
            await asyncio.sleep(0.02)
        record(done=body["id"])
    return web.json_response({"status": "SUCCESS"})

async def main():
    app = web.Application()
    app.router.add_get("/dapr/subscribe", subscribe)
    app.router.add_post("/{tail:.*}", deliver)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["APP_PORT"])).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    record(signal="SIGTERM")
    await runner.cleanup()

asyncio.run(main())
"""

COMPONENT = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.tether.embedded
  version: v1
  metadata:
    - name: path
      value: broker.db
"""

SUBSCRIPTION = """\
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: orders-sub
spec:
  pubsubname: {pubsub}
  topic: orders
  routes:
    rules:
      - match: event.data.kind == "widget"
        path: /declared-widgets
    default: /declared
"""


class Run:
    """One ``tether run`` with the app above, in ``cwd``."""

    def __init__(self, cwd: Path, mode: str, *extra: str) -> None:
        self.cwd = cwd
        self.http_port = free_port()
        (cwd / "app.py").write_text(APP)
        # tether's log to a file: a test can wait for a line while it runs
        self.log = cwd / "tether.log"
        self._log_file = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "tether.cli.main", "run", "--app-id", "shop",
                "--app-port", str(free_port()), "--http-port", str(self.http_port), *extra,
                "--", sys.executable, "app.py", mode,
            ],
            cwd=cwd, stdout=subprocess.PIPE, stderr=self._log_file, text=True,
        )

    def until(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + WAIT
        while True:
            if self.proc.poll() is not None:
                raise AssertionError(f"tether run exited early: {self.proc.communicate()}")
            try:
                value = check()
            except OSError:
                value = None
            if value:
                return value
            assert time.monotonic() < deadline, f"never happened: {what}"
            time.sleep(0.05)

    def subscriptions(self) -> list[dict[str, Any]]:
        """``/v1.0/metadata`` subscriptions, once there are any."""
        url = f"http://127.0.0.1:{self.http_port}/v1.0/metadata"

        def get() -> list[dict[str, Any]]:
            with urllib.request.urlopen(url, timeout=WAIT) as response:
                subs: list[dict[str, Any]] = json.load(response)["subscriptions"]
                return subs

        result: list[dict[str, Any]] = self.until("subscriptions in /v1.0/metadata", get)
        return result

    def publish(self, data: dict[str, Any]) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/v1.0/publish/pubsub/orders",
            data=json.dumps(data).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            assert response.status == 204

    def records(self) -> list[dict[str, Any]]:
        log = self.cwd / "deliveries.jsonl"
        if not log.exists():
            return []
        return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]

    def deliveries(self, count: int) -> list[dict[str, Any]]:
        """The first ``count`` deliveries (waits for them)."""
        def enough() -> list[dict[str, Any]] | None:
            got = [r for r in self.records() if "path" in r and "body" in r]
            return got if len(got) >= count else None

        result: list[dict[str, Any]] = self.until(f"{count} deliveries", enough)
        return result

    def finish(self) -> tuple[int, str, str]:
        out, _ = self.proc.communicate(timeout=WAIT)
        self._log_file.close()
        return self.proc.returncode, out, self.log.read_text()


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.proc.kill()
            run.proc.communicate()
        run._log_file.close()


def by_kind(deliveries: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for item in deliveries:
        out.setdefault(item["body"]["data"]["kind"], []).append(item)
    return out


def test_programmatic_subscription_routes_retries_and_sigterm_stops(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path, "programmatic")
    runs.append(run)
    assert run.subscriptions() == [{
        "pubsubname": "pubsub", "topic": "orders", "metadata": {},
        "rules": [
            {"match": 'event.data.kind == "widget"', "path": "/widgets"},
            {"match": "", "path": "/orders"},
        ],
        "deadLetterTopic": "", "type": "PROGRAMMATIC",
    }]
    run.publish({"kind": "widget", "n": 1})
    run.publish({"kind": "gadget", "n": 2})
    run.publish({"kind": "flaky", "n": 3})

    got = by_kind(run.deliveries(4))  # widget, gadget, flaky twice
    assert [d["path"] for d in got["widget"]] == ["/widgets"]
    assert [d["path"] for d in got["gadget"]] == ["/orders"]
    widget = got["widget"][0]
    assert widget["content_type"] == "application/cloudevents+json"
    event = widget["body"]
    assert event["data"] == {"kind": "widget", "n": 1}
    assert event["specversion"] == "1.0"
    assert event["type"] == "com.dapr.event.sent"
    assert event["source"] == "shop"
    assert event["topic"] == "orders"
    assert event["pubsubname"] == "pubsub"
    assert event["datacontenttype"] == "application/json"
    # RETRY: the same event again, at the same route
    flaky = got["flaky"]
    assert [(d["path"], d["attempt"]) for d in flaky] == [("/orders", 1), ("/orders", 2)]
    assert flaky[0]["body"]["id"] == flaky[1]["body"]["id"]

    run.proc.send_signal(signal.SIGTERM)
    code, _, err = run.finish()
    assert code == 0, err
    assert run.records()[-1] == {"signal": "SIGTERM"}
    assert "subscribed to pubsub/orders (programmatic, group shop)" in err


def test_declarative_subscription_from_resources(tmp_path: Path, runs: list[Run]) -> None:
    resources = tmp_path / "components"
    resources.mkdir()
    (resources / "pubsub.yaml").write_text(COMPONENT)
    (resources / "subscription.yaml").write_text(SUBSCRIPTION.format(pubsub="pubsub"))
    run = Run(tmp_path, "none", "--resources-path", str(resources))
    runs.append(run)
    (sub,) = run.subscriptions()
    assert sub["type"] == "DECLARATIVE"
    assert sub["rules"][-1] == {"match": "", "path": "/declared"}
    run.publish({"kind": "widget"})
    run.publish({"kind": "other"})
    got = by_kind(run.deliveries(2))
    assert [d["path"] for d in got["widget"]] == ["/declared-widgets"]
    assert [d["path"] for d in got["other"]] == ["/declared"]
    assert got["other"][0]["body"]["data"] == {"kind": "other"}
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish()[0] == 0


def test_sigterm_lets_an_in_flight_delivery_finish_before_the_app_stops(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path, "programmatic", "--grace-period", "60")
    runs.append(run)
    run.subscriptions()
    run.publish({"kind": "slow"})
    run.until("the slow delivery reaches the app", (tmp_path / "slow.started").exists)
    run.proc.send_signal(signal.SIGTERM)
    run.until("tether is stopping", lambda: "stopping (SIGTERM)" in run.log.read_text())
    # tether waits for the delivery, so the app is not signalled yet
    (tmp_path / "slow.release").touch()
    code, _, err = run.finish()
    assert code == 0, err
    records = run.records()
    done = [i for i, r in enumerate(records) if "done" in r]
    assert done and records[-1] == {"signal": "SIGTERM"}
    assert done[0] < len(records) - 1
    assert [r["attempt"] for r in records if "attempt" in r] == [1]  # settled, not retried


@pytest.mark.parametrize(
    ("mode", "pubsub", "expected"),
    [
        # the same topic declared and returned by /dapr/subscribe: both are named
        ("programmatic", "pubsub", ["Subscription 'orders-sub'", "GET /dapr/subscribe"]),
        ("none", "nowhere", ["'nowhere'", "it has: pubsub"]),
    ],
)
def test_a_subscription_that_cannot_run_stops_startup(
    tmp_path: Path, runs: list[Run], mode: str, pubsub: str, expected: list[str]
) -> None:
    resources = tmp_path / "components"
    resources.mkdir()
    (resources / "pubsub.yaml").write_text(COMPONENT)
    (resources / "subscription.yaml").write_text(SUBSCRIPTION.format(pubsub=pubsub))
    run = Run(tmp_path, mode, "--resources-path", str(resources))
    runs.append(run)
    code, _, err = run.finish()
    assert code == 1
    for text in expected:
        assert text in err
    assert run.records()[-1:] == [{"signal": "SIGTERM"}]  # the app was stopped
