"""Crash safety with real processes: `tether worker tests.workflows.crash_app:app
--replicas 3` runs the runtime while the test SIGKILLs its worker processes again and again
(the supervisor restarts them); 200 workflows, each a fan-out then a chain, must all
complete with the right outputs (docs/workflows.md, "Crash safety")."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workflows.runtime_apps import fanout_chain_expected
from tests.workflows.runtime_env import Backend, make_backend
from tether.platform.workflows.durable import AsyncWorkflowClient, RuntimeConfig
from tether.platform.workflows.history import RuntimeStatus

ROOT = Path(__file__).resolve().parents[2]
INSTANCES = 200
WIDTH = 5
KILLS = 8
DEADLINE = 900.0


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def start_workers(backend: Backend, replicas: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ, WF_CRASH_BROKER=backend.broker_url,
               WF_CRASH_NAMESPACE=backend.namespace,
               WF_CRASH_STATE=json.dumps({"name": backend.state.name,
                                          "type": backend.state.type,
                                          "metadata": dict(backend.state.metadata)}))
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tether.cli.main", "worker",
             "tests.workflows.crash_app:app", "--replicas", str(replicas), "--grace", "10"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            for child in children(process.pid):
                os.kill(child, signal.SIGKILL)
            process.kill()
            process.wait()


@pytest.mark.timeout(DEADLINE + 120)
@pytest.mark.parametrize("backend_name", ["embedded", "redis", "kafka"])
async def test_sigkilled_workers_lose_no_workflow(
        backend_name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    backend = make_backend(backend_name, request, tmp_path)
    supervisor = start_workers(backend, 3, tmp_path / "workers.log")
    config = RuntimeConfig(broker_url=backend.broker_url, state_store=backend.state,
                           namespace=backend.namespace)
    try:
        async with AsyncWorkflowClient(config) as client:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 120
            while not await client.instances.is_registered("workflow", "fanout_chain"):
                assert loop.time() < deadline, "the workers never registered their workflows"
                assert supervisor.poll() is None, (tmp_path / "workers.log").read_text()
                await asyncio.sleep(0.2)
            rng = random.Random(5)
            busy_kills = 0

            async def killer() -> None:
                nonlocal busy_kills
                for _ in range(KILLS):
                    await asyncio.sleep(rng.uniform(0.5, 1.5))
                    victims = children(supervisor.pid)
                    while not victims:  # all restarting: wait for one
                        await asyncio.sleep(0.2)
                        victims = children(supervisor.pid)
                    os.kill(rng.choice(victims), signal.SIGKILL)
                    if pending:
                        busy_kills += 1

            ids = [f"crash-{i}" for i in range(INSTANCES)]
            pending = set(ids)
            killing = asyncio.create_task(killer())
            for i, iid in enumerate(ids):  # scheduled in waves while workers die
                await client.schedule_new_workflow(
                    "fanout_chain", input={"width": WIDTH, "seed": i}, instance_id=iid)
                if i % 10 == 9:
                    await asyncio.sleep(0.3)
            deadline = loop.time() + DEADLINE
            while pending:
                assert loop.time() < deadline, f"{len(pending)} workflows never finished"
                await asyncio.sleep(0.5)
                for iid in list(pending):
                    state = await client.get_workflow_state(iid)
                    if state is not None and state.runtime_status.is_terminal:
                        pending.discard(iid)
            await killing
            assert busy_kills >= KILLS // 2  # most kills hit workers with work in hand
            for i, iid in enumerate(ids):
                state = await client.get_workflow_state(iid)
                assert state is not None
                assert state.runtime_status == RuntimeStatus.COMPLETED, state
                assert state.output() == fanout_chain_expected(WIDTH, i)
    finally:
        stop(supervisor)
    # the supervisor saw every kill (and restarted the worker)
    assert (tmp_path / "workers.log").read_text().count("exited with -9") == KILLS
