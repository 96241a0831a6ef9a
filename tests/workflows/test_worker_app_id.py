"""`tether worker --app-id ID` gives a WorkflowRuntime the app's namespace, so workflows that
the app's sidecar (or a client with that app id) starts reach these workers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflows.runtime_env import make_backend
from tether.platform.workflows.durable import AsyncWorkflowClient, RuntimeConfig
from tether.platform.workflows.history import RuntimeStatus

ROOT = Path(__file__).resolve().parents[2]


async def test_worker_app_id_sets_the_namespace(
        request: pytest.FixtureRequest, tmp_path: Path) -> None:
    backend = make_backend("embedded", request, tmp_path)
    app_id = f"orders-{backend.namespace}"
    env = {k: v for k, v in os.environ.items()
           if k not in ("APP_ID", "TETHER_APP_ID", "TETHER_WORKFLOW_NAMESPACE")}
    env.update(WF_CRASH_BROKER=backend.broker_url,
               WF_CRASH_STATE=json.dumps({"name": backend.state.name,
                                          "type": backend.state.type,
                                          "metadata": dict(backend.state.metadata)}))
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "tether.cli.main", "worker",
             "tests.workflows.crash_app:app", "--app-id", app_id],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        config = RuntimeConfig(broker_url=backend.broker_url, state_store=backend.state,
                               app_id=app_id)
        async with AsyncWorkflowClient(config) as client:
            # an unregistered name fails at once, so wait until the worker has registered
            for _ in range(600):
                if await client.instances.is_registered("workflow", "chain"):
                    break
                assert worker.poll() is None, log.read_text()
                await asyncio.sleep(0.2)
            else:
                raise AssertionError(f"the worker never registered: {log.read_text()}")
            iid = await client.schedule_new_workflow("chain", input=1)
            state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
            assert state is not None
            assert state.runtime_status == RuntimeStatus.COMPLETED
            assert state.output() == 32
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(60)
        except subprocess.TimeoutExpired:
            worker.kill()
            worker.wait()
