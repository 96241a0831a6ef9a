"""Where a WorkflowRuntime with no configuration finds its broker and state store: the
sidecar's component files when `tether run` started the app (TETHER_RESOURCES_PATH), the
embedded defaults otherwise."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tether.platform.workflows.durable import RuntimeConfig
from tether.platform.workflows.durable.config import connect

COMPONENTS = """\
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: orders-pubsub
spec:
  type: pubsub.tether.embedded
  version: v1
  metadata:
    - name: path
      value: custom-broker.db
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
  name: actors
spec:
  type: state.sqlite
  version: v1
  metadata:
    - name: connectionString
      value: actors.db
    - name: actorStateStore
      value: "true"
"""

APP = """\
import asyncio, json
from tether.workers.workflows import WorkflowRuntime

wfr = WorkflowRuntime()  # no configuration: found through the sidecar's resources

@wfr.activity(name="hello")
def hello(ctx, name):
    return f"hello {name}"

@wfr.workflow(name="greet")
def greet(ctx, name):
    return (yield ctx.call_activity(hello, input=name))

async def main():
    async with wfr:
        client = wfr.client()
        iid = await client.schedule_new_workflow("greet", input="tether")
        state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
        open("result.json", "w").write(json.dumps(state.output()))

asyncio.run(main())
"""


async def test_resources_path_picks_the_pubsub_and_the_actor_state_store(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "components.yaml").write_text(COMPONENTS)
    monkeypatch.chdir(tmp_path)
    conn = await connect(RuntimeConfig(resources_path=str(tmp_path / "res")))
    try:
        assert conn.broker.url.startswith("embedded://")
        assert "custom-broker.db" in conn.broker.url
        await conn.store.get("x")
    finally:
        await conn.close()
    assert (tmp_path / "actors.db").exists()
    assert not (tmp_path / "cache.db").exists()


def test_an_app_started_by_tether_run_needs_no_configuration(tmp_path: Path) -> None:
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "components.yaml").write_text(COMPONENTS)
    (tmp_path / "app.py").write_text(textwrap.dedent(APP))
    from tests.servers import free_port

    proc = subprocess.run(
        [sys.executable, "-m", "tether.cli.main", "run", "--app-id", "greeter",
         "-H", str(free_port()), "-d", "res", "--", sys.executable, "app.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "result.json").read_text() == '"hello tether"'
    assert (tmp_path / "actors.db").exists()  # the sidecar's actor state store
    assert not (tmp_path / ".tether" / "workflows.db").exists()  # not the default


def test_sync_runtime_and_client(tmp_path: Path) -> None:
    # Dapr's synchronous shape: wfr.start() / shutdown(), DaprWorkflowClient
    from tether.platform.components import Component
    from tether.platform.workflows.durable import DaprWorkflowClient
    from tether.workers.workflows import WorkflowRuntime

    config = RuntimeConfig(broker_url=f"embedded://{tmp_path}/broker.db",
                           state_store=Component(name="s", type="state.sqlite", metadata={
                               "connectionString": str(tmp_path / "state.db")}),
                           namespace="sync")
    wfr = WorkflowRuntime(config)

    @wfr.activity(name="inc")
    def inc(ctx: object, x: int) -> int:
        return x + 1

    @wfr.workflow(name="twice")
    def twice(ctx: object, x: int) -> object:
        x = yield ctx.call_activity(inc, input=x)  # type: ignore[attr-defined]
        return (yield ctx.call_activity(inc, input=x))  # type: ignore[attr-defined]

    wfr.start()
    try:
        with DaprWorkflowClient(config) as client:
            iid = client.schedule_new_workflow(twice, input=40)
            state = client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
            assert state is not None and state.output() == 42
            assert client.purge_workflow(iid)
            assert client.get_workflow_state(iid) is None
    finally:
        wfr.shutdown()
