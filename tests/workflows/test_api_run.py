"""The workflow API of a real ``tether run`` sidecar, with the app's own WorkflowRuntime
(tests/workflows/api_app.py) finding the broker and state store through the sidecar: with a
resources folder (a pub/sub and an ``actorStateStore`` SQLite store) and with none (the
embedded defaults on both sides)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tether.cli.run import free_port
from tether.sdk.client import Client, TetherApiError, TetherClientError

ROOT = Path(__file__).resolve().parents[2]
WAIT = 120.0  # a ceiling against hangs on a loaded machine, not a timing assertion

RESOURCES = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: events
spec:
  type: pubsub.tether.embedded
  version: v1
  metadata:
    - name: path
      value: events.db
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: cache
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      value: cache.db
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: workflow-state
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      value: workflow-state.db
    - name: actorStateStore
      value: "true"
"""


@pytest.fixture
def run_app(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {WAIT}s")
        time.sleep(0.2)


@pytest.mark.parametrize("with_resources", [True, False], ids=["resources", "defaults"])
def test_tether_run_app_runs_workflows_started_over_http(
    tmp_path: Path, run_app: list[subprocess.Popen[str]], with_resources: bool
) -> None:
    port = free_port()
    args = ["--app-id", "wfapp", "--http-port", str(port)]
    if with_resources:
        (tmp_path / "resources").mkdir()
        (tmp_path / "resources" / "components.yaml").write_text(RESOURCES)
        args += ["--resources-path", "resources"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TETHER_RESOURCES_PATH", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "tether.cli.main", "run", *args, "--",
         sys.executable, "-m", "tests.workflows.api_app"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    run_app.append(proc)
    client = Client(f"http://127.0.0.1:{port}", timeout=30)

    def started() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"tether run exited: {proc.stdout.read() if proc.stdout else ''}")
        try:
            return client.start_workflow("greet", "run", "run-1").instance_id
        except TetherApiError as exc:  # the app's runtime has not registered "greet" yet
            assert exc.status == 400 and "not registered" in exc.message, exc
        except TetherClientError:  # the sidecar is not listening yet
            pass
        return None

    assert _until(started, "a start the app's runtime accepts") == "run-1"
    done = client.wait_for_workflow_completion("run-1", timeout_in_seconds=WAIT)
    assert done.runtime_status == "COMPLETED" and done.output == "hello hello run"
    assert done.custom_status == "greeting"
    with pytest.raises(TetherApiError) as dup:
        client.start_workflow("approval", None, "run-2")
        client.start_workflow("approval", None, "run-2")
    assert dup.value.status == 409
    client.raise_workflow_event("run-2", "approve", "ok")
    assert client.wait_for_workflow_completion("run-2", timeout_in_seconds=WAIT).output == \
        {"order": None, "decision": "ok"}
    kinds = [type(e).__name__ for e in client.get_workflow_history("run-1")]
    assert kinds.count("TaskCompleted") == 2 and kinds[-1] == "ExecutionCompleted"
    listed = client.list_workflows()
    assert {i["instanceID"] for i in listed.instances} == {"run-1", "run-2"}
    client.close()

    # the state lives where both sides were told: the actor state store, or the default file
    expected = "workflow-state.db" if with_resources else ".tether/workflows.db"
    assert (tmp_path / expected).exists()
    if with_resources:
        assert not (tmp_path / ".tether" / "workflows.db").exists()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(WAIT) == 0
