"""A real ``tether run`` sidecar with a Redis state store and a Resiliency file: during a
Redis outage (the server stopped with a real signal), a save under an outbound retry
policy waits and succeeds once Redis is back on its port; the same save to a component
without a policy fails at once, as before."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from tests.servers import free_port, run_redis
from tests.state.test_api_run import http, start, stop

COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: guarded}}
spec:
  type: state.redis
  version: v1
  metadata:
    - {{name: redisHost, value: "{address}"}}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: plain}}
spec:
  type: state.redis
  version: v1
  metadata:
    - {{name: redisHost, value: "{address}"}}
"""
RESILIENCY = """\
apiVersion: dapr.io/v1alpha1
kind: Resiliency
metadata:
  name: outage
scopes: [shop]
spec:
  policies:
    timeouts:
      perCall: 2s
    retries:
      untilBack:
        policy: constant
        duration: 100ms
        maxRetries: -1
  targets:
    components:
      guarded:
        outbound:
          timeout: perCall
          retry: untilBack
"""


def test_a_save_during_a_redis_outage_is_retried_until_redis_is_back(tmp_path: Path) -> None:
    port = free_port()
    resources = tmp_path / "resources"
    resources.mkdir()
    (resources / "resiliency.yaml").write_text(RESILIENCY)
    sidecar_port = free_port()
    base = f"http://127.0.0.1:{sidecar_port}/v1.0"
    answer: dict[str, Any] = {}
    saving = threading.Thread(target=lambda: answer.update(
        status=http("POST", f"{base}/state/guarded", [{"key": "k2", "value": 2}])[0]))
    with run_redis(port=port) as address:
        (resources / "components.yaml").write_text(COMPONENTS.format(address=address))
        proc = start(resources, sidecar_port)
    try:
        # the first server got SIGTERM on leaving the block: nothing listens on the port
        status, _, body = http("POST", f"{base}/state/plain", [{"key": "k1", "value": 1}])
        assert status == 500 and b"ERR_STATE_SAVE" in body
        saving.start()
        saving.join(1.0)
        assert saving.is_alive(), f"the guarded save answered during the outage: {answer}"
        with run_redis(port=port):
            saving.join(60)
            assert not saving.is_alive()
            assert answer["status"] == 204
            status, _, body = http("GET", f"{base}/state/guarded/k2")
            assert (status, body) == (200, b"2")
            # the policy is per component: the plain one works again, untouched
            assert http("POST", f"{base}/state/plain", [{"key": "k1", "value": 1}])[0] == 204
            stop(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
