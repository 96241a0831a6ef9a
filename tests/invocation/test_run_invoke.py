"""Service invocation between real processes: ``tether run -f`` with a caller and a target
app (tests/invocation/target_app.py), on the embedded broker, Redis and Kafka (tansu).

One run per backend serves the module's tests; the replica test adds a second ``tether
run`` of the target app on the same broker.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tether.cli.run import free_port

ROOT = Path(__file__).resolve().parents[2]
APP = Path(__file__).with_name("target_app.py")
WAIT = 90.0  # a ceiling for things that should happen, never an assertion about speed
BACKENDS = ("embedded", "redis", "kafka")
VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")


def component(backend: str, tmp: Path, request: pytest.FixtureRequest) -> str:
    if backend == "embedded":
        kind, meta = "pubsub.tether.embedded", {"path": str(tmp / "broker.db")}
    elif backend == "kafka":
        kind, meta = "pubsub.kafka", {"brokers": request.getfixturevalue("kafka_address")}
    else:
        # a namespace of its own: the session's Redis is shared by every test
        kind, meta = "pubsub.redis", {"redisHost": request.getfixturevalue("redis_address"),
                                      "namespace": f"invoke-{os.getpid()}-{time.time_ns()}"}
    return yaml.safe_dump({
        "apiVersion": "dapr.io/v1alpha1", "kind": "Component",
        "metadata": {"name": "pubsub"},
        "spec": {"type": kind, "version": "v1",
                 "metadata": [{"name": k, "value": v} for k, v in meta.items()]},
    })


class Process:
    """A ``tether run`` process logging to a file."""

    def __init__(self, args: list[str], cwd: Path, log: Path) -> None:
        self.log = log
        self._log = log.open("w")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("TETHER_RESOURCES_PATH", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tether.cli.main", "run", *args],
            cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=self._log,
        )

    def alive(self) -> None:
        assert self.proc.poll() is None, f"tether run exited: {self.log.read_text()}"

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.log.read_text()


class Run:
    """``tether run -f`` with the apps ``caller`` and ``cart`` (both target_app.py), or
    those of ``app_ids``."""

    def __init__(self, root: Path, backend: str,
                 configs: dict[str, dict[str, Any]] | None = None,
                 app_ids: tuple[str, ...] = ("caller", "cart")) -> None:
        self.root = root
        self.backend = backend
        self.ports = {app_id: free_port() for app_id in app_ids}
        apps = []
        for app_id, port in self.ports.items():
            (root / app_id).mkdir()
            app = {"appID": app_id, "appDirPath": f"./{app_id}", "daprHTTPPort": port,
                   "appPort": free_port(), "command": [sys.executable, str(APP)]}
            if configs and app_id in configs:  # the app's Configuration resource
                (root / f"{app_id}-config.yaml").write_text(yaml.safe_dump({
                    "apiVersion": "dapr.io/v1alpha1", "kind": "Configuration",
                    "metadata": {"name": app_id}, "spec": configs[app_id]}))
                app["configFilePath"] = str(root / f"{app_id}-config.yaml")
            apps.append(app)
        run_file = {"version": 1, "common": {"resourcesPath": "./components"}, "apps": apps}
        (root / "dapr.yaml").write_text(yaml.safe_dump(run_file))
        self.process = Process(["-f", "dapr.yaml"], root, root / "tether.log")
        self.session = requests.Session()

    def url(self, path: str, app: str = "caller") -> str:
        return f"http://127.0.0.1:{self.ports[app]}{path}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", WAIT)
        return self.session.request(method, self.url(path), **kwargs)

    def until_served(self, app_id: str = "cart") -> None:
        """Calls answered by the target (its sidecar joined the group and got the topic)."""
        deadline = time.monotonic() + WAIT
        while True:
            self.process.alive()
            try:
                answer = self.call("GET", f"/v1.0/invoke/{app_id}/method/ready",
                                   headers={"tether-invoke-timeout": "2s"}, timeout=10)
                if answer.status_code == 200:
                    return
            except requests.RequestException:
                pass
            assert time.monotonic() < deadline, f"{app_id} never served: {self.process.log}"
            time.sleep(0.2)


@pytest.fixture(scope="module", params=BACKENDS)
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    root = tmp_path_factory.mktemp(f"invoke-{request.param}")
    (root / "components").mkdir()
    (root / "components" / "pubsub.yaml").write_text(component(request.param, root, request))
    started = Run(root, request.param)
    try:
        started.until_served()
        yield started
    finally:
        log = started.process.stop()
        assert "Traceback" not in log, log


def echo(answer: requests.Response) -> dict[str, Any]:
    body: dict[str, Any] = answer.json()
    return body


def headers_of(body: dict[str, Any]) -> dict[str, str]:
    return {k.lower(): v for k, v in body["headers"]}


@pytest.mark.parametrize("verb", VERBS)
def test_every_verb_reaches_the_app_with_its_path_query_and_body(run: Run, verb: str) -> None:
    data = b"" if verb in ("GET", "HEAD", "OPTIONS") else b'{"n": 1}'
    answer = run.call(verb, "/v1.0/invoke/cart/method/orders/a%2Fb/c%20d?x=1&y=%3D",
                      data=data, headers={"Content-Type": "application/json"})
    assert answer.status_code == 200
    assert answer.headers["x-answer"] == "yes"
    if verb == "HEAD":
        assert answer.content == b""
        return
    got = echo(answer)
    assert got["method"] == verb
    assert got["raw_path"] == "/orders/a%2Fb/c%20d?x=1&y=%3D"
    assert got["length"] == len(data)
    assert got["sha256"] == hashlib.sha256(data).hexdigest()


def test_headers_go_to_the_app_and_its_status_and_headers_come_back(run: Run) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    answer = run.call("POST", "/v1.0/invoke/cart.default/method/teapot?status=418",
                      data="hi", headers={"Content-Type": "text/plain", "x-custom": "v1",
                                          "traceparent": trace, "Connection": "keep-alive",
                                          "tether-invoke-timeout": "30s"})
    assert answer.status_code == 418
    assert answer.headers["Content-Type"].startswith("application/json")
    assert answer.raw.headers.getlist("Set-Cookie") == ["a=1", "b=2"]
    got = headers_of(echo(answer))
    assert got["x-custom"] == "v1"
    assert got["traceparent"] == trace
    assert got["content-type"] == "text/plain"
    assert got["dapr-caller-app-id"] == "caller"
    assert got["dapr-callee-app-id"] == "cart"
    # the sidecar's own and the hop-by-hop headers stop at the sidecar
    assert "tether-invoke-timeout" not in got
    assert got.get("connection", "keep-alive").lower() == "keep-alive"  # the app's own hop


def test_a_large_body_goes_and_one_over_the_limit_is_refused(run: Run) -> None:
    # Kafka takes records up to the component's max_request_size (1 MiB by default)
    size = 900 * 1024 if run.backend == "kafka" else 3 * 1024 * 1024
    body = os.urandom(size)
    answer = run.call("PUT", "/v1.0/invoke/cart/method/blob", data=body)
    assert answer.status_code == 200
    assert echo(answer)["sha256"] == hashlib.sha256(body).hexdigest()
    if run.backend == "kafka":
        too_big = run.call("PUT", "/v1.0/invoke/cart/method/blob", data=body * 2)
        assert too_big.status_code == 500
        assert too_big.json()["errorCode"] == "ERR_DIRECT_INVOKE"
        assert "max_request_size" in too_big.json()["message"]
    refused = run.call("PUT", "/v1.0/invoke/cart/method/blob", data=b"x" * (4 * 1024 * 1024 + 1))
    assert refused.status_code == 413
    assert refused.json()["errorCode"] == "ERR_BODY_TOO_LARGE"


def test_the_proxy_form_calls_the_app_named_by_dapr_app_id(run: Run) -> None:
    answer = run.call("POST", "/orders/7?status=201", data=b"{}",
                      headers={"dapr-app-id": "cart", "Content-Type": "application/json"})
    assert answer.status_code == 201
    got = echo(answer)
    assert got["raw_path"] == "/orders/7?status=201"
    assert "dapr-app-id" not in headers_of(got)


def test_an_unknown_app_fails_in_daprs_shape(run: Run) -> None:
    answer = run.call("GET", "/v1.0/invoke/nobody/method/x",
                      headers={"tether-invoke-timeout": "2s"})
    # Kafka cannot tell a group without members: the call waits for its deadline there
    assert answer.status_code == (504 if run.backend == "kafka" else 500)
    assert answer.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    assert "nobody" in answer.json()["message"]


def test_a_call_past_its_deadline_answers_504_and_a_late_one_is_skipped(run: Run) -> None:
    answer = run.call("GET", "/v1.0/invoke/cart/method/slow?seconds=3&id=late",
                      headers={"tether-invoke-timeout": "1s"})
    assert answer.status_code == 504
    assert answer.json()["errorCode"] == "ERR_DIRECT_INVOKE"
    run.until_served()  # the sidecar still answers other calls


def test_a_missing_method_is_a_400(run: Run) -> None:
    answer = run.call("GET", "/v1.0/invoke/cart/method/")
    assert answer.status_code == 400
    assert answer.json()["errorCode"] == "ERR_DIRECT_INVOKE"


def test_two_replicas_of_the_target_share_the_calls(run: Run) -> None:
    replica_dir = run.root / "replica"
    replica_dir.mkdir()
    replica = Process(
        ["--app-id", "cart", "--app-port", str(free_port()), "--http-port", str(free_port()),
         "--resources-path", str(run.root / "components"), "--", sys.executable, str(APP)],
        replica_dir, replica_dir / "tether.log",
    )
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + WAIT
        while len(pids) < 2:  # the group rebalances: calls soon reach both
            replica.alive()
            answer = run.call("POST", "/v1.0/invoke/cart/method/share", data=b"x")
            assert answer.status_code == 200
            pids.add(echo(answer)["pid"])
            assert time.monotonic() < deadline, f"one replica took every call: {pids}"
    finally:
        log = replica.stop()
    assert "Traceback" not in log, log
    run.until_served()  # the survivor takes the calls again once the group has shrunk


def test_the_targets_access_control_list_decides_who_may_call_what(
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """cart's Configuration lets caller read /ready and post /orders/**, nothing else (one
    backend: the list is checked by the target's sidecar, whatever carried the call)."""
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "pubsub.yaml").write_text(component("embedded", tmp_path, request))
    acl = {"accessControl": {"defaultAction": "deny", "policies": [{
        "appId": "caller", "defaultAction": "deny", "operations": [
            {"name": "/ready", "httpVerb": ["GET"], "action": "allow"},
            {"name": "/orders/**", "httpVerb": ["POST"], "action": "allow"},
        ]}]}}
    started = Run(tmp_path, "embedded", configs={"cart": acl})
    try:
        started.until_served()
        assert started.call("POST", "/v1.0/invoke/cart/method/orders/7/lines",
                            data="x").status_code == 200
        for verb, path in (("GET", "/orders/7"), ("POST", "/teapot")):
            denied = started.call(verb, f"/v1.0/invoke/cart/method{path}", data="x")
            assert denied.status_code == 403, denied.text
            assert denied.json()["errorCode"] == "ERR_DIRECT_INVOKE"
            assert "access control policy has denied access" in denied.json()["message"]
    finally:
        log = started.process.stop()
    assert "Traceback" not in log, log


RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata: {name: invoke}
spec:
  policies:
    retries:
      thrice: {policy: constant, duration: 50ms, maxRetries: 3,
               matching: {httpStatusCodes: "500"}}
  targets:
    apps:
      cart: {retry: thrice}
"""


def test_the_callers_resiliency_policy_retries_the_apps_failures(
    tmp_path: Path, request: pytest.FixtureRequest,
) -> None:
    """targets.apps.cart retries a 500 three times: two failures are hidden, five are not
    (the last answer comes back as it was)."""
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "pubsub.yaml").write_text(component("embedded", tmp_path, request))
    (tmp_path / "components" / "resiliency.yaml").write_text(RESILIENCY)
    started = Run(tmp_path, "embedded")
    try:
        started.until_served()
        healed = started.call("GET", "/v1.0/invoke/cart/method/async/healed?fails=2")
        assert healed.status_code == 200, healed.text
        broken = started.call("GET", "/v1.0/invoke/cart/method/async/broken?fails=5")
        assert broken.status_code == 500
        calls = (tmp_path / "cart" / "calls.jsonl").read_text().splitlines()
        assert sum('"/async/broken?fails=5"' in line for line in calls) == 4  # 1 + 3 retries
    finally:
        log = started.process.stop()
    assert "Traceback" not in log, log
