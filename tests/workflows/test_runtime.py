"""The workflow runtime end to end: every pattern on a real broker and state store
(embedded + SQLite, Redis + Redis state, Kafka (tansu) + SQLite), through the client.

One runtime per backend serves the whole module (group joins on Kafka are slow); every test
uses its own instance ids. Waits poll with generous deadlines (a loaded 2-core machine)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from tests.workflows.runtime_apps import ATTEMPTS, register
from tests.workflows.runtime_env import BACKENDS, Backend, make_backend
from tether.platform.workflows.durable import (
    AsyncWorkflowClient,
    WorkflowAlreadyExistsError,
    WorkflowNotFinishedError,
    WorkflowNotFoundError,
    WorkflowNotRegisteredError,
)
from tether.platform.workflows.history import (
    EventRaised,
    ExecutionStarted,
    RuntimeStatus,
    TaskScheduled,
    TimerCreated,
    utcnow,
)
from tether.workers.workflows import WorkflowRuntime

pytestmark = pytest.mark.asyncio(loop_scope="module")
WAIT = 120.0


@pytest.fixture(scope="module", params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Backend:
    return make_backend(request.param, request, tmp_path_factory.mktemp(request.param))


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def runtime(backend: Backend) -> AsyncIterator[WorkflowRuntime]:
    wfr = WorkflowRuntime(broker_url=backend.broker_url, state_store=backend.state,
                          namespace=backend.namespace, sender_grace=2.0)
    register(wfr)
    async with wfr:
        yield wfr


@pytest.fixture
def client(runtime: WorkflowRuntime) -> AsyncWorkflowClient:
    return runtime.client()


def new_id(stem: str) -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}"


async def finished(client: AsyncWorkflowClient, iid: str):  # type: ignore[no-untyped-def]
    state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
    assert state is not None
    return state


async def test_chaining(client: AsyncWorkflowClient) -> None:
    iid = await client.schedule_new_workflow("chain", input=3, instance_id=new_id("chain"))
    state = await finished(client, iid)
    assert state.runtime_status == RuntimeStatus.COMPLETED
    assert state.output() == 3 * 2 ** 5
    assert json.loads(state.serialized_input or "null") == 3
    assert state.created_at <= state.last_updated_at
    history = await client.get_workflow_history(iid)
    assert [e.name for e in history if isinstance(e, TaskScheduled)] == ["double"] * 5


async def test_fan_out_fan_in_of_1000_activities(client: AsyncWorkflowClient,
                                                 runtime: WorkflowRuntime) -> None:
    assert runtime.orchestrator is not None
    steps_before = runtime.orchestrator.steps
    iid = await client.schedule_new_workflow("fan", input=1000)
    state = await finished(client, iid)
    assert state.runtime_status == RuntimeStatus.COMPLETED
    assert state.output() == sum(i * i for i in range(1000))
    # the completions were applied in batches: far fewer steps than completions
    assert runtime.orchestrator.steps - steps_before < 500


async def test_when_any_with_a_timeout(client: AsyncWorkflowClient) -> None:
    timed_out = await client.schedule_new_workflow("race", input=0.5)
    answered = await client.schedule_new_workflow("race", input=120)
    await client.wait_for_workflow_start(answered, timeout_in_seconds=WAIT)
    await client.raise_workflow_event(answered, "go", data="now")
    assert (await finished(client, timed_out)).output() == "timeout"
    assert (await finished(client, answered)).output() == "event now"


async def test_monitor_continues_as_new_with_a_fresh_history(
        client: AsyncWorkflowClient) -> None:
    iid = await client.schedule_new_workflow("monitor", input={"n": 1, "until": 4})
    state = await finished(client, iid)
    assert state.runtime_status == RuntimeStatus.COMPLETED
    assert state.output() == {"rounds": 4, "last": 8}
    assert json.loads(state.serialized_custom_status or "null") == {"round": 4, "value": 8}
    history = await client.get_workflow_history(iid)
    starts = [e for e in history if isinstance(e, ExecutionStarted)]
    assert len(starts) == 1 and starts[0].generation == 3  # earlier generations dropped
    assert sum(isinstance(e, TaskScheduled) for e in history) == 1


async def test_approval_by_external_event_or_timeout(client: AsyncWorkflowClient) -> None:
    approved = await client.schedule_new_workflow("approval", input=120)
    rejected = await client.schedule_new_workflow("approval", input=120)
    expired = await client.schedule_new_workflow("approval", input=0.5)
    await client.raise_workflow_event(approved, "approval", data={"approved": True})
    # an event raised before the instance runs is buffered, not lost
    await client.raise_workflow_event(rejected, "Approval", data={"approved": False})
    assert (await finished(client, approved)).output() == "approved"
    assert (await finished(client, rejected)).output() == "rejected"
    assert (await finished(client, expired)).output() == "timed out"
    history = await client.get_workflow_history(approved)
    assert sum(isinstance(e, EventRaised) for e in history) == 1


async def test_child_workflows_and_failure_propagation(client: AsyncWorkflowClient) -> None:
    good = await client.schedule_new_workflow("parent", input=[1, 2, 3])
    bad = await client.schedule_new_workflow("parent", input=[1, -2])
    careful = await client.schedule_new_workflow("careful_parent", input=-1)
    state = await finished(client, good)
    assert state.runtime_status == RuntimeStatus.COMPLETED
    assert state.output() == [2, 4, 6]
    failed = await finished(client, bad)
    assert failed.runtime_status == RuntimeStatus.FAILED
    assert failed.failure_details is not None
    assert "negative -2" in failed.failure_details.message
    assert (await finished(client, careful)).output() == "caught: TaskFailedError"
    child_id = f"{good}:0000"  # the engine's id for a parent's first child
    child = await client.get_workflow_state(child_id)
    assert child is not None and child.runtime_status == RuntimeStatus.COMPLETED
    assert child.parent_instance_id == good


async def test_retries_with_backoff(client: AsyncWorkflowClient) -> None:
    succeeds = await client.schedule_new_workflow("retrying", input={"fail": 2, "attempts": 3})
    gives_up = await client.schedule_new_workflow("retrying", input={"fail": 5, "attempts": 2})
    state = await finished(client, succeeds)
    assert state.output() == "ok after 3"
    assert ATTEMPTS[succeeds] == 3
    failed = await finished(client, gives_up)
    assert failed.runtime_status == RuntimeStatus.FAILED
    assert ATTEMPTS[gives_up] == 2
    timers = [e for e in await client.get_workflow_history(succeeds)
              if isinstance(e, TimerCreated)]
    assert len(timers) == 2
    # backoff: the second wait (0.2 s) is longer than the first (0.1 s)
    assert timers[1].fire_at - timers[1].timestamp > timers[0].fire_at - timers[0].timestamp


async def test_terminate_is_recursive(client: AsyncWorkflowClient) -> None:
    child_id = new_id("child")
    parent = await client.schedule_new_workflow("waiting_parent", input=child_id)
    await _until_exists(client, child_id)
    await client.terminate_workflow(parent, output="stopped")
    state = await finished(client, parent)
    assert state.runtime_status == RuntimeStatus.TERMINATED
    assert state.output() == "stopped"
    child = await finished(client, child_id)
    assert child.runtime_status == RuntimeStatus.TERMINATED


async def _until_exists(client: AsyncWorkflowClient, iid: str) -> None:
    import asyncio

    for _ in range(int(WAIT / 0.05)):
        state = await client.get_workflow_state(iid)
        if state is not None and state.runtime_status == RuntimeStatus.RUNNING:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{iid} never ran")


async def test_suspend_and_resume(client: AsyncWorkflowClient) -> None:
    import asyncio

    iid = await client.schedule_new_workflow("waiter")
    await client.wait_for_workflow_start(iid, timeout_in_seconds=WAIT)
    await client.pause_workflow(iid)
    await _until_status(client, iid, RuntimeStatus.SUSPENDED)
    await client.raise_workflow_event(iid, "go", data=42)
    await asyncio.sleep(0.5)  # not the assertion: gives the event time to (not) complete it
    state = await client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == RuntimeStatus.SUSPENDED
    await client.resume_workflow(iid)
    done = await finished(client, iid)
    assert done.runtime_status == RuntimeStatus.COMPLETED and done.output() == 42


async def _until_status(client: AsyncWorkflowClient, iid: str, status: RuntimeStatus) -> None:
    import asyncio

    for _ in range(int(WAIT / 0.05)):
        state = await client.get_workflow_state(iid)
        if state is not None and state.runtime_status == status:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{iid} never became {status}")


async def test_purge_only_finished_and_recursive(client: AsyncWorkflowClient) -> None:
    running = await client.schedule_new_workflow("waiter")
    with pytest.raises(WorkflowNotFinishedError):
        await client.purge_workflow(running)
    parent = await client.schedule_new_workflow("parent", input=[5])
    await finished(client, parent)
    child = f"{parent}:0000"
    assert await client.get_workflow_state(child) is not None
    assert await client.purge_workflow(parent) is True
    assert await client.get_workflow_state(parent) is None
    assert await client.get_workflow_state(child) is None
    assert await client.purge_workflow(parent) is False
    await client.terminate_workflow(running)
    await finished(client, running)
    assert await client.purge_workflow(running) is True


async def test_ids_names_and_reuse(client: AsyncWorkflowClient, runtime: WorkflowRuntime
                                   ) -> None:
    with pytest.raises(WorkflowNotRegisteredError):
        await client.schedule_new_workflow("no_such_workflow")
    iid = new_id("dup")
    await client.schedule_new_workflow("waiter", instance_id=iid)
    with pytest.raises(WorkflowAlreadyExistsError):
        await client.schedule_new_workflow("waiter", instance_id=iid)
    with pytest.raises(WorkflowNotFoundError):
        await client.raise_workflow_event(new_id("nobody"), "go")
    assert await client.get_workflow_state(new_id("nobody")) is None
    await client.raise_workflow_event(iid, "go", data="first")
    assert (await finished(client, iid)).output() == "first"
    # a finished id can be started again: a fresh instance with a fresh history
    await client.schedule_new_workflow("chain", instance_id=iid, input=1)
    state = await finished(client, iid)
    assert state.name == "chain" and state.output() == 32


async def test_start_at_stays_pending_until_due(client: AsyncWorkflowClient) -> None:
    iid = await client.schedule_new_workflow(
        "chain", input=1, start_at=utcnow() + timedelta(seconds=1.5))
    state = await client.get_workflow_state(iid)
    assert state is not None and state.runtime_status == RuntimeStatus.PENDING
    assert state.scheduled_start_at is not None
    done = await finished(client, iid)
    assert done.output() == 32
    assert done.last_updated_at >= state.scheduled_start_at


async def test_pending_until_a_worker_runs(backend: Backend, tmp_path: Path) -> None:
    # a runtime that registered its names but runs no worker: the instance waits, PENDING
    from tether.platform.workflows.durable.config import RuntimeConfig

    namespace = f"{backend.namespace}-idle"
    wfr = WorkflowRuntime(broker_url=backend.broker_url, state_store=backend.state,
                          namespace=namespace)
    register(wfr)
    async with AsyncWorkflowClient(RuntimeConfig(broker_url=backend.broker_url,
                                                 state_store=backend.state,
                                                 namespace=namespace)) as client:
        await wfr.register_names(client.instances)
        iid = await client.schedule_new_workflow("chain", input=2)
        state = await client.get_workflow_state(iid)
        assert state is not None and state.runtime_status == RuntimeStatus.PENDING
        async with wfr:
            done = await client.wait_for_workflow_completion(iid, timeout_in_seconds=WAIT)
        assert done is not None and done.output() == 64
