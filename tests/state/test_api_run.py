"""The state API in a real ``tether run`` sidecar process, with a resources dir holding a
``state.sqlite`` component: values survive a restart of the sidecar."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from tether.cli.run import free_port

WAIT = 60.0

COMPONENT = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: statestore}}
spec:
  type: state.sqlite
  version: v1
  metadata:
    - {{name: connectionString, value: "{path}"}}
"""


def http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
         ) -> tuple[int, dict[str, str], bytes]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def start(resources: Path, port: int) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "run", "--app-id", "shop",
         "--http-port", str(port), "--resources-path", str(resources)],
        cwd=resources.parent, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + WAIT
    while True:
        assert proc.poll() is None, "tether run exited at start"
        try:
            if http("GET", f"http://127.0.0.1:{port}/v1.0/healthz")[0] == 204:
                return proc
        except OSError:
            pass
        assert time.monotonic() < deadline, "the sidecar never became healthy"
        time.sleep(0.1)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT) == 0


def test_state_api_in_tether_run_survives_a_restart(tmp_path: Path) -> None:
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "state.yaml").write_text(COMPONENT.format(path=tmp_path / "state.db"))
    port = free_port()
    base = f"http://127.0.0.1:{port}/v1.0"
    proc = start(resources, port)
    try:
        status, _, _ = http("POST", f"{base}/state/statestore",
                            [{"key": "order-1", "value": {"id": 1}}])
        assert status == 204
        status, headers, body = http("GET", f"{base}/state/statestore/order-1")
        assert (status, json.loads(body)) == (200, {"id": 1})
        etag = headers["ETag"]
        _, _, meta = http("GET", f"{base}/metadata")
        (state,) = [c for c in json.loads(meta)["components"] if c["name"] == "statestore"]
        assert state["type"] == "state.sqlite" and "TRANSACTIONAL" in state["capabilities"]
    finally:
        stop(proc)
    proc = start(resources, port)
    try:
        status, headers, body = http("GET", f"{base}/state/statestore/order-1")
        assert (status, json.loads(body), headers["ETag"]) == (200, {"id": 1}, etag)
        status, _, body = http("DELETE", f"{base}/state/statestore/order-1",
                               headers={"If-Match": "0" * 32})
        assert (status, json.loads(body)["errorCode"]) == (409, "ERR_STATE_DELETE")
        status, _, body = http("GET", f"{base}/state/nope/order-1")
        assert (status, json.loads(body)["errorCode"]) == (400, "ERR_STATE_STORE_NOT_FOUND")
    finally:
        stop(proc)
