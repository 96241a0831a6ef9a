"""``tether run -f`` with apps that come up at different times, or never: each app's
subscriptions start when that app listens, one that never listens fails alone, and the
sidecars and apps of a run share one embedded location (real processes)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tether.cli.run import free_port
from tether.sdk.client import Client, TetherApiError, TetherClientError

ROOT = Path(__file__).resolve().parents[2]
WAIT = 60.0  # a ceiling for things that should happen, never an assertion about speed

# an aiohttp app subscribed to "orders": records each delivery, stops on SIGTERM
LISTENER = r"""
import asyncio, json, os, signal
from pathlib import Path
from aiohttp import web

async def subscribe(request):
    return web.json_response([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])

async def deliver(request):
    with Path("deliveries.jsonl").open("a") as f:
        f.write(json.dumps((await request.json())["data"]) + "\n")
    return web.json_response({"status": "SUCCESS"})

async def main():
    app = web.Application()
    app.router.add_get("/dapr/subscribe", subscribe)
    app.router.add_post("/orders", deliver)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["APP_PORT"])).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()

asyncio.run(main())
"""

# never listens on its APP_PORT; records the signal that stops it
DEAF = """
import signal, sys, time
def stop(sig, frame):
    open("signal.txt", "w").write(signal.Signals(sig).name)
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
open("started", "w").close()
while True:
    time.sleep(1)
"""


class RunFile:
    """``tether run -f`` on a run file in ``root``: apps in sub-folders of it."""

    def __init__(self, root: Path, apps: dict[str, str], *options: str,
                 app_ports: bool = True) -> None:
        self.root = root
        self.http_ports: dict[str, int] = {}
        entries = []
        for app_id, script in apps.items():
            folder = root / app_id
            folder.mkdir()
            self.http_ports[app_id] = free_port()
            (folder / "app.py").write_text(script)
            entry: dict[str, Any] = {
                "appID": app_id, "appDirPath": f"./{app_id}",
                "daprHTTPPort": self.http_ports[app_id], "command": [sys.executable, "app.py"],
            }
            if app_ports:
                entry["appPort"] = free_port()
            entries.append(entry)
        (root / "dapr.yaml").write_text(yaml.safe_dump({"version": 1, "apps": entries}))
        self.log = root / "tether.log"
        self._log = self.log.open("w")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("TETHER_RESOURCES_PATH", None)
        env.pop("TETHER_DATA_DIR", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether.cli.main", "run", "-f", "dapr.yaml", *options],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=self._log,
        )

    def until(self, what: str, check: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + WAIT
        while True:
            assert self.proc.poll() is None, f"tether run exited ({what}): {self.log.read_text()}"
            try:
                value = check()
            except OSError:
                value = None
            if value:
                return value
            assert time.monotonic() < deadline, f"never happened: {what}"
            time.sleep(0.05)

    def url(self, app_id: str, path: str) -> str:
        return f"http://127.0.0.1:{self.http_ports[app_id]}{path}"

    def subscribed(self, app_id: str) -> None:
        def get() -> bool:
            with urllib.request.urlopen(self.url(app_id, "/v1.0/metadata"), timeout=5) as resp:
                return bool(json.load(resp)["subscriptions"])

        self.until(f"{app_id}'s subscriptions", get)

    def publish(self, app_id: str, data: object) -> None:
        request = urllib.request.Request(
            self.url(app_id, "/v1.0/publish/pubsub/orders"), data=json.dumps(data).encode(),
            method="POST", headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            assert response.status == 204

    def delivered(self, app_id: str, data: object) -> None:
        log = self.root / app_id / "deliveries.jsonl"

        def seen() -> bool:
            return log.exists() and data in [json.loads(x) for x in log.read_text().splitlines()]

        self.until(f"{data} delivered to {app_id}", seen)

    def stop(self) -> tuple[int, str]:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(WAIT)
        self._log.close()
        return code, self.log.read_text()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


@pytest.fixture
def runs() -> Iterator[list[RunFile]]:
    started: list[RunFile] = []
    yield started
    for run in started:
        run.close()


def test_an_app_still_starting_does_not_hold_back_the_others(
    tmp_path: Path, runs: list[RunFile]
) -> None:
    # "deaf" has the default minute to listen; "shop" is served meanwhile
    run = RunFile(tmp_path, {"deaf": DEAF, "shop": LISTENER})
    runs.append(run)
    run.subscribed("shop")
    run.publish("shop", {"n": 1})
    run.delivered("shop", {"n": 1})
    run.until("deaf started", (tmp_path / "deaf" / "started").exists)
    # a stop while "deaf" is still awaited: every app stopped, no stray task errors
    code, log = run.stop()
    assert code == 0, log
    assert (tmp_path / "deaf" / "signal.txt").read_text() == "SIGTERM"
    assert "never retrieved" not in log and "Traceback" not in log, log


def test_an_app_that_never_listens_fails_alone(tmp_path: Path, runs: list[RunFile]) -> None:
    run = RunFile(tmp_path, {"deaf": DEAF, "shop": LISTENER}, "--app-port-timeout", "1")
    runs.append(run)
    run.until("deaf's failure", lambda: "did not listen" in run.log.read_text())
    run.until("deaf stopped", (tmp_path / "deaf" / "signal.txt").exists)
    # the run goes on without it, as `dapr run -f` does
    run.subscribed("shop")
    run.publish("shop", {"n": 2})
    run.delivered("shop", {"n": 2})
    code, log = run.stop()
    assert code == 1, log  # an app of the run failed
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "app 'deaf' did not listen on port" in errors[0], log


def test_a_run_file_app_in_its_own_folder_shares_the_sidecars_embedded_store(
    tmp_path: Path, runs: list[RunFile]
) -> None:
    # no resources: the sidecar and the app's WorkflowRuntime use the embedded defaults,
    # the app in <run file>/wfapp, the sidecar started in <run file>
    runtime = "from tests.workflows.api_app import main\nmain()\n"
    run = RunFile(tmp_path, {"wfapp": runtime}, app_ports=False)
    runs.append(run)
    client = Client(run.url("wfapp", ""), timeout=30)

    def started() -> str | None:
        try:
            return client.start_workflow("approval", "order-7", "run-1").instance_id
        except TetherApiError as exc:  # the app's runtime has not registered it yet
            assert exc.status == 400 and "not registered" in exc.message, exc
        except TetherClientError:  # the sidecar is not listening yet
            pass
        return None

    assert run.until("a start the app's runtime accepts", started) == "run-1"
    run.until("the workflow waits for its event", lambda: client.get_workflow(
        "run-1").runtime_status == "RUNNING")
    client.raise_workflow_event("run-1", "approve", "yes")
    done = client.wait_for_workflow_completion("run-1", timeout_in_seconds=WAIT)
    assert done.runtime_status == "COMPLETED"
    assert done.output == {"order": "order-7", "decision": "yes"}
    client.close()
    assert (tmp_path / ".tether" / "workflows.db").exists()
    assert not (tmp_path / "wfapp" / ".tether").exists()
    code, log = run.stop()
    assert code == 0, log
