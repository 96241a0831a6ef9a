"""Delayed publish end to end through ``tether run``: an HTTP app subscribed to a topic, a
publish with ``metadata.deliverAfter`` / ``deliverAt`` on the sidecar's API, delivery no
earlier than due; and the whole process group SIGKILLed while events are scheduled, then a
new ``tether run`` on the same embedded broker delivering every one of them."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tether.cli.run import free_port

WAIT = 60.0  # a ceiling for things that should happen, never an assertion about speed

APP = r"""
import asyncio, json, os, signal, time
from pathlib import Path
from aiohttp import web

async def subscribe(request):
    return web.json_response([{"pubsubname": "pubsub", "topic": "reminders",
                               "route": "/reminders"}])

async def deliver(request):
    body = await request.json()
    with Path("deliveries.jsonl").open("a") as f:
        f.write(json.dumps({"at": time.time(), "event": body}) + "\n")
    return web.json_response({"status": "SUCCESS"})

async def main():
    app = web.Application()
    app.router.add_get("/dapr/subscribe", subscribe)
    app.router.add_post("/reminders", deliver)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["APP_PORT"])).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()

asyncio.run(main())
"""


class Run:
    """``tether run`` with the app above in ``cwd``, in its own process group."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.http_port = free_port()
        (cwd / "app.py").write_text(APP)
        self._log = (cwd / f"tether-{self.http_port}.log").open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether.cli.main", "run", "--app-id", "remind",
             "--app-port", str(free_port()), "--http-port", str(self.http_port),
             "--", sys.executable, "app.py"],
            cwd=cwd, stdout=subprocess.DEVNULL, stderr=self._log, start_new_session=True,
        )

    def until(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + WAIT
        while True:
            assert self.proc.poll() is None, f"tether run exited early ({what})"
            try:
                value = check()
            except OSError:
                value = None
            if value:
                return value
            assert time.monotonic() < deadline, f"never happened: {what}"
            time.sleep(0.05)

    def subscribed(self) -> None:
        def get() -> bool:
            url = f"http://127.0.0.1:{self.http_port}/v1.0/metadata"
            with urllib.request.urlopen(url, timeout=WAIT) as response:
                return bool(json.load(response)["subscriptions"])

        self.until("the subscription", get)

    def publish(self, data: dict[str, Any], **metadata: str) -> None:
        query = urllib.parse.urlencode({f"metadata.{k}": v for k, v in metadata.items()})
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}/v1.0/publish/pubsub/reminders?{query}",
            data=json.dumps(data).encode(), method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            assert response.status == 204

    def deliveries(self) -> dict[int, float]:
        """Event number -> the app's clock when it first received it."""
        log = self.cwd / "deliveries.jsonl"
        got: dict[int, float] = {}
        if log.exists():
            for line in log.read_text().splitlines():
                if line.strip():
                    item = json.loads(line)
                    got.setdefault(item["event"]["data"]["n"], item["at"])
        return got

    def kill(self) -> None:
        """SIGKILL the sidecar and the app at once: a crashed pod."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        run.close()


def test_delayed_publish_reaches_the_app_no_earlier_than_due(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = Run(tmp_path)
    runs.append(run)
    run.subscribed()
    due: dict[int, float] = {}
    for n, delay in enumerate(["1s", "2500ms", "0", "1.5"]):
        before = time.time()
        run.publish({"n": n}, deliverAfter=delay)
        due[n] = before + {"1s": 1, "2500ms": 2.5, "0": 0, "1.5": 1.5}[delay]
    at = datetime.now(UTC) + timedelta(seconds=2)
    run.publish({"n": 9}, deliverAt=at.isoformat())
    due[9] = at.timestamp()
    got = run.until("every delivery", lambda: (d := run.deliveries()).keys() >= due.keys() and d)
    for n, when in due.items():
        assert got[n] >= when, f"event {n} delivered {when - got[n]:.3f}s early"


def test_scheduled_events_survive_a_killed_tether_run(tmp_path: Path, runs: list[Run]) -> None:
    first = Run(tmp_path)
    runs.append(first)
    first.subscribed()
    due: dict[int, float] = {}
    for n in range(10):
        before = time.time()
        first.publish({"n": n}, deliverAfter=f"{15 + n * 0.2}s")
        due[n] = before + 15 + n * 0.2
    time.sleep(1.0)  # setup, not an assertion: let the sidecar's scheduler fetch them
    first.kill()
    assert first.deliveries() == {}, "delivered before the crash, long before due"
    second = Run(tmp_path)
    runs.append(second)
    got = second.until("every scheduled event",
                       lambda: (d := second.deliveries()).keys() >= due.keys() and d)
    for n, when in due.items():
        assert got[n] >= when
