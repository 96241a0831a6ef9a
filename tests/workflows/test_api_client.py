"""tether.AsyncClient's workflow methods (and the sync Client's, in a thread) against a real
sidecar app with the workflow block and a running WorkflowRuntime."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.workflows.api_env import Env, running
from tether.platform.workflows.history import ExecutionCompleted, TaskCompleted
from tether.sdk.client import AsyncClient, Client, TetherApiError


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with running(tmp_path) as e:
        yield e


@pytest.fixture
async def client(env: Env) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(f"http://127.0.0.1:{env.client.server.port}") as c:
        yield c


def iid() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


async def test_start_wait_and_read(client: AsyncClient) -> None:
    started = await client.start_workflow("greet", "ann", instance_id=iid())
    state = await client.wait_for_workflow_completion(started.instance_id,
                                                      timeout_in_seconds=90)
    assert state.instance_id == started.instance_id and state.workflow_name == "greet"
    assert state.runtime_status == "COMPLETED" and state.is_finished
    assert (state.input, state.output, state.custom_status) == ("ann", "hello hello ann",
                                                                 "greeting")
    assert state.failure is None
    assert state.created_at <= state.last_updated_at and state.created_at.tzinfo is not None
    events = await client.get_workflow_history(started.instance_id)
    assert isinstance(events[-1], ExecutionCompleted)
    assert [e.result for e in events if isinstance(e, TaskCompleted)] == \
        ['"hello ann"', '"hello hello ann"']


async def test_events_lifecycle_and_purge(client: AsyncClient) -> None:
    wid = iid()
    await client.start_workflow("approval", {"n": 1}, wid)
    assert (await client.wait_for_workflow_start(wid, timeout_in_seconds=90)).runtime_status \
        in ("RUNNING", "SUSPENDED", "COMPLETED")
    await client.pause_workflow(wid)
    await client.resume_workflow(wid)
    await client.raise_workflow_event(wid, "approve", ["yes"])
    done = await client.wait_for_workflow_completion(wid, timeout_in_seconds=90)
    assert done.output == {"order": {"n": 1}, "decision": ["yes"]}
    page = await client.list_workflows(status=["COMPLETED"])
    assert wid in {i["instanceID"] for i in page.instances}
    await client.purge_workflow(wid)
    with pytest.raises(TetherApiError) as gone:
        await client.get_workflow(wid)
    assert (gone.value.status, gone.value.error_code) == (404, "ERR_INSTANCE_ID_NOT_FOUND")


async def test_failure_terminate_and_errors(client: AsyncClient) -> None:
    failed = await client.start_workflow("fail", "bad input", iid())
    state = await client.wait_for_workflow_completion(failed.instance_id,
                                                      timeout_in_seconds=90)
    assert state.runtime_status == "FAILED" and state.output is None
    assert state.failure is not None and "bad input" in state.failure.message

    sleepy = iid()
    await client.start_workflow("sleepy", instance_id=sleepy)
    with pytest.raises(TetherApiError) as dup:
        await client.start_workflow("sleepy", instance_id=sleepy)
    assert (dup.value.status, dup.value.error_code) == (409, "ERR_START_WORKFLOW")
    with pytest.raises(TimeoutError):
        await client.wait_for_workflow_completion(sleepy, timeout_in_seconds=0.3)
    await client.terminate_workflow(sleepy)
    assert (await client.wait_for_workflow_completion(sleepy, timeout_in_seconds=90)
            ).runtime_status == "TERMINATED"
    with pytest.raises(TetherApiError) as unknown:
        await client.start_workflow("nobody-hosts-this")
    assert (unknown.value.status, unknown.value.error_code) == (400, "ERR_START_WORKFLOW")


async def test_raw_bytes_are_sent_as_they_are(client: AsyncClient) -> None:
    wid = iid()
    await client.start_workflow("greet", b'"raw"', wid, send_raw_bytes=True)
    state = await client.wait_for_workflow_completion(wid, timeout_in_seconds=90)
    assert state.output == "hello hello raw"
    with pytest.raises(TetherApiError) as bad:
        await client.start_workflow("greet", b"not json", iid(), send_raw_bytes=True)
    assert (bad.value.status, bad.value.error_code) == (400, "ERR_MALFORMED_REQUEST")


async def test_the_blocking_client_too(env: Env) -> None:
    def run() -> tuple[str, object]:
        with Client(f"http://127.0.0.1:{env.client.server.port}") as c:
            wid = c.start_workflow("greet", "sync").instance_id
            c.wait_for_workflow_start(wid, timeout_in_seconds=90)
            done = c.wait_for_workflow_completion(wid, timeout_in_seconds=90)
            assert [type(e).__name__ for e in c.get_workflow_history(wid)][-1] == \
                "ExecutionCompleted"
            assert wid in {i["instanceID"] for i in c.list_workflows(name="greet").instances}
            return done.runtime_status, done.output

    # in a thread: the sidecar answers from this event loop
    assert await asyncio.to_thread(run) == ("COMPLETED", "hello hello sync")
