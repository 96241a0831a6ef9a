"""End to end: ``tether run --resources-path DIR --config FILE`` as a real process.

A pub/sub component reaches a password-protected redis-server only with the password it
resolved from a secretKeyRef, and the secrets API answers or denies per the app
configuration's scopes. The password never shows in /v1.0/metadata or the sidecar's output.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from tests.servers import free_port, unavailable, wait_for_port

WAIT = 60.0  # a ceiling for things that should happen, never a speed assertion
PASSWORD = "s3cret-Pa55/for:redis"


@pytest.fixture(scope="module")
def protected_redis() -> Iterator[str]:
    """A throw-away redis-server that requires PASSWORD; yields ``host:port``."""
    binary = shutil.which("redis-server")
    if binary is None:
        unavailable("redis-server is not on PATH (Debian package redis-server)")
    assert binary is not None
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="tether-redis-auth-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", workdir, "--requirepass", PASSWORD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, 20, process)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)


COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: local
spec:
  type: secretstores.local.file
  version: v1
  metadata:
    - name: secretsFile
      value: secrets.json
    - name: multiValued
      value: "true"
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
auth:
  secretStore: local
spec:
  type: pubsub.redis
  version: v1
  metadata:
    - name: redisHost
      value: "{address}"
    - name: redisPassword
      secretKeyRef:
        name: redis
        key: {key}
"""

CONFIG = """\
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: appconfig
spec:
  secrets:
    scopes:
      - storeName: local
        defaultAccess: deny
        allowedSecrets: ["db-pass"]
"""


def setup_app(tmp_path: Path, address: str, key: str = "password") -> None:
    (tmp_path / "components").mkdir()
    (tmp_path / "components" / "components.yaml").write_text(
        COMPONENTS.format(address=address, key=key)
    )
    (tmp_path / "config.yaml").write_text(CONFIG)
    (tmp_path / "secrets.json").write_text(
        json.dumps({"redis": {"password": PASSWORD}, "db-pass": "db-value"})
    )


def tether_run(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "run", "--app-id", "secrets-e2e",
         "--http-port", str(port), "--resources-path", "components", "--config", "config.yaml"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def call(method: str, url: str, body: bytes | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            raw = response.read()
            return int(response.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        return exc.code, json.loads(raw) if raw else None


def wait_healthy(base: str, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"tether run exited early: {proc.communicate()}")
        try:
            if call("GET", f"{base}/v1.0/healthz")[0] == 204:
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise AssertionError("the sidecar did not answer /v1.0/healthz")


def stream_entries(address: str, topic: str) -> int:
    host, port = address.split(":")
    client = redis.Redis(host=host, port=int(port), password=PASSWORD)
    try:
        keys = client.scan_iter(match=f"*{topic}*", _type="stream")
        return sum(int(client.xlen(key)) for key in keys)
    finally:
        client.close()


def test_resolved_password_reaches_redis_and_scopes_guard_the_api(
    tmp_path: Path, protected_redis: str
) -> None:
    host, port = protected_redis.split(":")
    with pytest.raises(redis.AuthenticationError):  # the server really wants the password
        redis.Redis(host=host, port=int(port)).xlen("x")
    setup_app(tmp_path, protected_redis)
    http_port = free_port()
    base = f"http://127.0.0.1:{http_port}"
    proc = tether_run(tmp_path, http_port)
    try:
        wait_healthy(base, proc)
        status, _ = call("POST", f"{base}/v1.0/publish/pubsub/orders", b'{"id": 1}')
        assert status == 204
        assert stream_entries(protected_redis, "orders") == 1

        assert call("GET", f"{base}/v1.0/secrets/local/db-pass") == (200, {"db-pass": "db-value"})
        status, body = call("GET", f"{base}/v1.0/secrets/local/redis")
        assert status == 403 and body["errorCode"] == "ERR_PERMISSION_DENIED"
        assert call("GET", f"{base}/v1.0/secrets/local/bulk") == (
            200, {"db-pass": {"db-pass": "db-value"}}
        )
        status, body = call("GET", f"{base}/v1.0/secrets/nope/x")
        assert status == 401 and body["errorCode"] == "ERR_SECRET_STORE_NOT_FOUND"

        status, metadata = call("GET", f"{base}/v1.0/metadata")
        assert status == 200
        assert {c["name"] for c in metadata["components"]} == {"local", "pubsub"}
        assert PASSWORD not in json.dumps(metadata)

        assert call("POST", f"{base}/v1.0/shutdown")[0] == 204
        out, err = proc.communicate(timeout=WAIT)
        assert proc.returncode == 0
        assert PASSWORD not in out and PASSWORD not in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_an_unresolvable_ref_stops_tether_run_naming_what_is_missing(
    tmp_path: Path, protected_redis: str
) -> None:
    setup_app(tmp_path, protected_redis, key="no-such-key")
    proc = tether_run(tmp_path, free_port())
    try:
        out, err = proc.communicate(timeout=WAIT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    message = out + err
    for part in ("component 'pubsub'", "metadata redisPassword", "secretKeyRef 'redis'",
                 "secret store 'local'", "no key 'no-such-key'"):
        assert part in message, message
    assert PASSWORD not in message
