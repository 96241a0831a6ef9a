"""Durable async invocation between real processes (docs/invocation.md, "Durable async
calls"): ``tether run`` with a caller and a target app (tests/invocation/target_app.py) on
the embedded broker and Redis.

The caller's app subscribes to the target's dead-letter topic (a declarative Subscription
routed to ``/deadletter``), so what the target refused is read back through the broker.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.invocation.test_run_invoke import APP, WAIT, Process, Run, component
from tests.processes import children
from tether.cli.run import free_port

BACKENDS = ("embedded", "redis")
ASYNC = {"tether-invoke-async": "true"}


def resources(root: Path, backend: str, request: pytest.FixtureRequest) -> Path:
    """The pub/sub component, and the caller's subscription to cart's dead letters."""
    folder = root / "components"
    folder.mkdir()
    (folder / "pubsub.yaml").write_text(component(backend, root, request))
    (folder / "deadletters.yaml").write_text(yaml.safe_dump({
        "apiVersion": "dapr.io/v2alpha1", "kind": "Subscription",
        "metadata": {"name": "cart-dead-letters"},
        "spec": {"pubsubname": "pubsub", "topic": "tether.invoke.async.cart.deadletter",
                 "routes": {"default": "/deadletter"}},
        "scopes": ["caller"],
    }))
    return folder


@pytest.fixture(scope="module", params=BACKENDS)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp(f"async-{request.param}")
    resources(root, request.param, request)
    started = Run(root, request.param)
    try:
        started.until_served()
        yield started
    finally:
        log = started.process.stop()
        assert "Traceback" not in log, log


def recorded(folder: Path) -> list[dict[str, Any]]:
    """The calls an app recorded (``calls.jsonl`` in its folder)."""
    calls = folder / "calls.jsonl"
    if not calls.exists():
        return []
    return [json.loads(line) for line in calls.read_text().splitlines() if line.strip()]


def until(check: Callable[[], bool], what: str, process: Process) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        process.alive()
        assert time.monotonic() < deadline, f"never: {what}; {process.log.read_text()}"
        time.sleep(0.1)


def paths(folder: Path) -> list[str]:
    return [call["raw_path"] for call in recorded(folder)]


def accepted(answer: requests.Response) -> str:
    assert answer.status_code == 202, answer.text
    call_id: str = answer.json()["id"]
    assert call_id
    return call_id


def test_an_async_call_is_accepted_then_made_with_its_headers_and_body(run: Run) -> None:
    accepted(run.call("POST", "/v1.0/invoke/cart/method/async/one?x=1", data="hello",
                      headers={**ASYNC, "x-custom": "v1"}))
    # the query parameter form, which does not reach the app
    accepted(run.call("PUT", "/v1.0/invoke/cart/method/async/two?metadata.async=true&y=2",
                      data="there"))
    cart = run.root / "cart"
    until(lambda: {"/async/one?x=1", "/async/two?y=2"} <= set(paths(cart)), "both calls",
          run.process)
    bodies = {call["raw_path"]: call["body"] for call in recorded(cart)}
    assert bodies["/async/one?x=1"] == "hello"
    assert bodies["/async/two?y=2"] == "there"


def test_a_failing_call_is_retried_until_the_app_takes_it(run: Run) -> None:
    path = "/async/flaky?fails=2"
    accepted(run.call("POST", f"/v1.0/invoke/cart/method{path}", data="x", headers=ASYNC))
    # two 500s, then the 200 that settles it
    until(lambda: paths(run.root / "cart").count(path) >= 3, "the third attempt", run.process)


def test_a_call_the_app_refuses_is_dead_lettered(run: Run) -> None:
    path = "/async/bad?status=400"
    call_id = accepted(run.call("POST", f"/v1.0/invoke/cart/method{path}", data="x",
                                headers=ASYNC))

    def dead_letters() -> list[str]:
        return [json.loads(call["body"])["id"] for call in recorded(run.root / "caller")
                if call["raw_path"] == "/deadletter"]

    until(lambda: call_id in dead_letters(), "the dead letter", run.process)
    assert paths(run.root / "cart").count(path) == 1  # a 400 is not retried


def test_calls_with_one_key_reach_the_app_in_order(run: Run) -> None:
    for i in range(10):
        accepted(run.call("POST", f"/v1.0/invoke/cart/method/async/order/{i}", data=str(i),
                          headers={**ASYNC, "tether-invoke-key": "k1"}))
    cart = run.root / "cart"

    def made() -> list[str]:
        return [p for p in paths(cart) if p.startswith("/async/order/")]

    until(lambda: len(made()) >= 10, "ten calls", run.process)
    assert made() == [f"/async/order/{i}" for i in range(10)]


def test_a_bad_async_flag_is_a_400(run: Run) -> None:
    answer = run.call("POST", "/v1.0/invoke/cart/method/async/x",
                      headers={"tether-invoke-async": "maybe"})
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "ERR_DIRECT_INVOKE"


def cart_process(root: Path) -> Process:
    folder = root / "cart"
    folder.mkdir(exist_ok=True)
    return Process(
        ["--app-id", "cart", "--app-port", str(free_port()), "--http-port", str(free_port()),
         "--resources-path", str(root / "components"), "--", sys.executable, str(APP)],
        folder, folder / f"tether-{time.time_ns()}.log",
    )


def test_a_call_accepted_while_the_target_was_killed_is_made_after_its_restart(
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    resources(tmp_path, "embedded", request)
    caller = Run(tmp_path, "embedded", app_ids=("caller",))
    cart = cart_process(tmp_path)
    try:
        caller.until_served()
        # SIGKILL: no drain, no goodbye to the group; its app is killed too
        orphans = [child.pid for child in children(cart.proc.pid)]
        cart.proc.send_signal(signal.SIGKILL)
        cart.proc.wait()
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        cart.stop()
        accepted(caller.call("POST", "/v1.0/invoke/cart/method/async/durable", data="kept",
                             headers=ASYNC))
        cart = cart_process(tmp_path)
        until(lambda: "/async/durable" in paths(tmp_path / "cart"), "the call after restart",
              cart)
    finally:
        cart_log = cart.stop()
        log = caller.process.stop()
    assert "Traceback" not in log, log
    assert "Traceback" not in cart_log, cart_log
