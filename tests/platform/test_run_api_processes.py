"""``tether run --api-processes 2``: two processes serve the sidecar's HTTP API on one port
(docs/running.md). Real processes and signals; which process answered a call is read from
/proc (the owner of the server end of its connection), not from any API."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import alive, children, connection_owner
from tether.cli.run import free_port

WAIT = 30.0  # a ceiling for things that should happen, never an assertion about speed
ENTRY = "tether.cli.run.api_process"

# subscribes to "orders" programmatically and records each delivered event's data
APP = r"""
import asyncio, json, os, signal
from pathlib import Path
from aiohttp import web

async def subscribe(request):
    return web.json_response([{"pubsubname": "pubsub", "topic": "orders", "route": "/orders"}])

async def deliver(request):
    body = await request.json()
    with Path("deliveries.jsonl").open("a") as f:
        f.write(json.dumps(body["data"]) + "\n")
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

COMPONENT = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: {name}
spec:
  type: {type}
  version: v1
  metadata:
{metadata}
"""


class Run:
    """A ``tether run --api-processes 2`` process and the calls made to its sidecar."""

    def __init__(self, proc: subprocess.Popen[str], port: int, folder: Path) -> None:
        self.proc = proc
        self.port = port
        self.folder = folder

    def api_pids(self) -> list[int]:
        return [p.pid for p in children(self.proc.pid) if ENTRY in p.command]

    def pids(self) -> list[int]:
        return [self.proc.pid, *self.api_pids()]

    def call(
        self, method: str, path: str, body: bytes | None = None,
        headers: dict[str, str] | None = None, on: int | None = None,
    ) -> tuple[int, bytes, int | None]:
        """One call on a new connection: (status, body, the pid that answered); with
        ``on``, connections are opened until that process holds one."""
        deadline = time.monotonic() + WAIT
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=WAIT)
            try:
                conn.request("GET", "/v1.0/healthz")  # answered: the connection is accepted
                conn.getresponse().read()
                owner = connection_owner(self.port, conn.sock.getsockname()[1], self.pids())
                if on is None or owner == on:
                    conn.request(method, path, body=body, headers={
                        "Content-Type": "application/json", **(headers or {})})
                    response = conn.getresponse()
                    return response.status, response.read(), owner
            finally:
                conn.close()
            assert time.monotonic() < deadline, f"no connection reached process {on}"

    def deliveries(self) -> list[dict[str, int]]:
        path = self.folder / "deliveries.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line]

    def wait_until(self, what: str, check: object) -> None:
        deadline = time.monotonic() + WAIT
        while not callable(check) or not check():
            assert self.proc.poll() is None, f"tether run exited: {self.proc.communicate()}"
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.05)


@pytest.fixture
def runs() -> Iterator[list[Run]]:
    started: list[Run] = []
    yield started
    for run in started:
        if run.proc.poll() is None:
            run.proc.send_signal(signal.SIGTERM)
            try:
                run.proc.communicate(timeout=WAIT)
            except subprocess.TimeoutExpired:
                run.proc.kill()
                run.proc.communicate()


def start(
    folder: Path, runs: list[Run], *, app: bool = True, resources: str | None = None,
    env: dict[str, str] | None = None,
) -> Run:
    port = free_port()
    args = ["--app-id", "orders", "--http-port", str(port), "--api-processes", "2"]
    if resources is not None:
        (folder / "resources").mkdir()
        (folder / "resources" / "components.yaml").write_text(resources)
        args += ["--resources-path", "resources"]
    if app:
        args += ["--app-port", str(free_port()), "--", sys.executable, "-c", APP]
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "run", *args], cwd=folder,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, **(env or {})},
    )
    run = Run(proc, port, folder)
    runs.append(run)
    run.wait_until("two API processes", lambda: len(run.api_pids()) == 1)
    return run


def subscribed(run: Run) -> bool:
    status, body, _ = run.call("GET", "/v1.0/metadata")
    return status == 200 and bool(json.loads(body)["subscriptions"])


def publish(run: Run, n: int) -> int | None:
    """Publish ``{"n": n}``; the pid that accepted it, None if it was not accepted."""
    try:
        status, _, owner = run.call("POST", "/v1.0/publish/pubsub/orders",
                                    json.dumps({"n": n}).encode())
    except (OSError, http.client.HTTPException):
        return None
    return owner if status == 204 else None


def test_both_processes_serve_and_answer_for_the_whole_sidecar(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = start(tmp_path, runs)
    run.wait_until("the app's subscription runs", lambda: subscribed(run))
    main, (api,) = run.proc.pid, run.api_pids()

    # calls land on both, and a publish through either reaches the app's subscription
    owners = {n: publish(run, n) for n in range(40)}
    assert set(owners.values()) == {main, api}
    run.wait_until("every event delivered",
                   lambda: sorted(d["n"] for d in run.deliveries()) == list(range(40)))

    # one metadata, whoever answers: the main's subscriptions, a value PUT through the other
    assert run.call("PUT", "/v1.0/metadata/color", b"blue", on=api)[0] == 204
    views = [json.loads(run.call("GET", "/v1.0/metadata", on=pid)[1]) for pid in (main, api)]
    assert views[0] == views[1]
    assert views[0]["extended"]["color"] == "blue"
    assert [s["topic"] for s in views[0]["subscriptions"]] == ["orders"]

    # shutdown through the API process stops the whole sidecar
    assert run.call("POST", "/v1.0/shutdown", on=api)[0] == 204
    assert run.proc.wait(WAIT) == 0
    assert not alive(api)


def test_a_killed_api_process_is_restarted_and_what_was_accepted_arrives(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = start(tmp_path, runs)
    run.wait_until("the app's subscription runs", lambda: subscribed(run))
    (api,) = run.api_pids()
    accepted = [n for n in range(20) if publish(run, n) is not None]
    os.kill(api, signal.SIGKILL)
    accepted += [n for n in range(20, 60) if publish(run, n) is not None]
    run.wait_until("a new API process", lambda: run.api_pids() not in ([], [api]))
    (new,) = run.api_pids()
    status, _, _ = run.call("POST", "/v1.0/publish/pubsub/orders", b'{"n": 60}', on=new)
    assert status == 204
    accepted.append(60)
    run.wait_until("every accepted event delivered",
                   lambda: set(accepted) <= {d["n"] for d in run.deliveries()})
    run.proc.send_signal(signal.SIGTERM)
    _, err = run.proc.communicate(timeout=WAIT)
    assert f"API process {api} of app 'orders' ended (killed by SIGKILL)" in err
    assert not alive(new)


def test_sigterm_stops_every_process(tmp_path: Path, runs: list[Run]) -> None:
    run = start(tmp_path, runs, app=False)
    (api,) = run.api_pids()
    run.proc.send_signal(signal.SIGTERM)
    assert run.proc.wait(WAIT) == 0
    assert not alive(api)


def test_a_sigkilled_tether_run_takes_its_api_processes_down(
    tmp_path: Path, runs: list[Run]
) -> None:
    run = start(tmp_path, runs, app=False)
    (api,) = run.api_pids()
    run.proc.kill()
    run.proc.wait(WAIT)
    deadline = time.monotonic() + WAIT
    while alive(api):  # the parent-death signal: SIGTERM, then it drains and exits
        assert time.monotonic() < deadline, "the API process outlived tether run"
        time.sleep(0.05)


def test_the_api_token_is_checked_by_every_process(tmp_path: Path, runs: list[Run]) -> None:
    run = start(tmp_path, runs, app=False, env={"DAPR_API_TOKEN": "s3cret"})
    main, (api,) = run.proc.pid, run.api_pids()
    for pid in (main, api):
        assert run.call("GET", "/v1.0/metadata", on=pid)[0] == 401
        status, body, _ = run.call(
            "GET", "/v1.0/metadata", headers={"dapr-api-token": "s3cret"}, on=pid)
        assert status == 200 and json.loads(body)["id"] == "orders"


def test_configuration_subscriptions_live_in_the_main_process(
    tmp_path: Path, runs: list[Run], redis_address: str
) -> None:
    resources = COMPONENT.format(
        name="config", type="configuration.redis",
        metadata=f"  - name: redisHost\n    value: {redis_address}")
    run = start(tmp_path, runs, resources=resources)
    main, (api,) = run.proc.pid, run.api_pids()
    status, body, _ = run.call("GET", "/v1.0/configuration/config/subscribe?key=a", on=api)
    assert status == 200
    sub_id = json.loads(body)["id"]
    # made through the API process, found through the main one
    status, body, _ = run.call("GET", f"/v1.0/configuration/config/{sub_id}/unsubscribe",
                               on=main)
    assert (status, json.loads(body)) == (200, {"ok": True})


def test_an_in_memory_component_cannot_be_shared(tmp_path: Path) -> None:
    (tmp_path / "resources").mkdir()
    (tmp_path / "resources" / "pubsub.yaml").write_text(
        COMPONENT.format(name="mem", type="pubsub.in-memory", metadata="    []"))
    proc = subprocess.run(
        [sys.executable, "-m", "tether.cli.main", "run", "--app-id", "orders", "--http-port",
         str(free_port()), "--api-processes", "2", "--resources-path", "resources"],
        cwd=tmp_path, capture_output=True, text=True, timeout=WAIT,
    )
    assert proc.returncode == 1
    assert "component 'mem'" in proc.stderr
    assert "pubsub.in-memory" in proc.stderr and "--api-processes" in proc.stderr
    assert "HTTP API on" not in proc.stderr  # nothing served
