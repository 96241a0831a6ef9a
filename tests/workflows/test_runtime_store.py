"""The runtime's store and delivery guarantees in isolation: group commit keeps each
instance's write atomic and separate; an event redelivered with the same id is applied
once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.workflows.runtime_apps import register
from tether.platform.components import Component
from tether.platform.state.registry import open_state_store
from tether.platform.state.store import ETagMismatchError, StateStore
from tether.platform.workflows.durable.codec import orchestration_event
from tether.platform.workflows.durable.instances import InstanceMeta, InstanceStore
from tether.platform.workflows.durable.names import Names
from tether.platform.workflows.history import EventRaised, RuntimeStatus
from tether.workers.workflows import WorkflowRuntime


@pytest_asyncio.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    opened = await open_state_store(Component(
        name="s", type="state.sqlite", metadata={"connectionString": str(tmp_path / "s.db")}))
    yield opened
    await opened.close()


async def test_grouped_writes_fail_alone(store: StateStore) -> None:
    instances = InstanceStore(store, Names("grp"))
    # three creates at once share one transaction; two of them want the same new id
    results = await asyncio.gather(
        instances.create(InstanceMeta("a", "wf"), None, 0, ()),
        instances.create(InstanceMeta("b", "wf", input="1"), None, 0, ()),
        instances.create(InstanceMeta("b", "wf", input="2"), None, 0, ()),
        return_exceptions=True)
    assert results[0] is None
    assert sorted(type(r).__name__ for r in results[1:]) == ["ETagMismatchError", "NoneType"]
    assert await instances.get_meta("a") is not None
    found = await instances.get_meta("b")
    assert found is not None and found[0].input in ("1", "2")
    # a stale ETag fails that instance's step only
    meta, etag = found
    await instances.commit_step(meta, etag, [], ["e1"], reset=False, outbox=())
    with pytest.raises(ETagMismatchError):
        await instances.commit_step(meta, etag, [], ["e2"], reset=False, outbox=())
    loaded = await instances.load("b")
    assert loaded.seen == {"e1"} and loaded.meta is not None and loaded.meta.chunks == 1


async def test_an_event_redelivered_with_its_id_is_applied_once(tmp_path: Path) -> None:
    wfr = WorkflowRuntime(broker_url=f"embedded://{tmp_path}/broker.db",
                          state_store=Component(name="s", type="state.sqlite", metadata={
                              "connectionString": str(tmp_path / "state.db")}),
                          namespace="dedup")
    register(wfr)
    async with wfr:
        client = wfr.client()
        iid = await client.schedule_new_workflow("collect_two")
        await client.wait_for_workflow_start(iid, timeout_in_seconds=120)
        assert wfr.connection is not None
        broker, names = wfr.connection.broker, wfr.connection.names
        once = orchestration_event(iid, EventRaised(name="x", input='"first"'))
        # the same CloudEvent twice (as after a crash between commit and ack), then another
        await broker.publish(names.orchestrations, once)
        await broker.publish(names.orchestrations, once)
        await broker.publish(names.orchestrations,
                             orchestration_event(iid, EventRaised(name="x", input='"second"')))
        state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
    assert state is not None and state.runtime_status == RuntimeStatus.COMPLETED
    assert state.output() == ["first", "second"]


async def test_history_compaction_keeps_every_event(tmp_path: Path) -> None:
    from tether.platform.workflows.history import TaskScheduled
    from tether.workers.workflows.orchestrator import OrchestratorOptions

    def runtime() -> WorkflowRuntime:
        wfr = WorkflowRuntime(broker_url=f"embedded://{tmp_path}/broker.db",
                              state_store=Component(name="s", type="state.sqlite", metadata={
                                  "connectionString": str(tmp_path / "state.db")}),
                              namespace="compact",
                              orchestrator=OrchestratorOptions(compact_after=3))
        register(wfr)
        return wfr

    async with runtime() as wfr:
        client = wfr.client()
        iid = await client.schedule_new_workflow("chain", input=1)
        state = await client.wait_for_workflow_completion(iid, timeout_in_seconds=120)
        assert state is not None and state.output() == 32
        history = await client.get_workflow_history(iid)
        assert [e.name for e in history if isinstance(e, TaskScheduled)] == ["double"] * 5
        found = await client.instances.get_meta(iid)
        assert found is not None and found[0].chunks <= 3
        waiting = await client.schedule_new_workflow("collect_two")
        await client.raise_workflow_event(waiting, "x", data=1)
        await client.wait_for_workflow_start(waiting, timeout_in_seconds=120)
    # a new owner reloads the compacted history and carries on
    async with runtime() as wfr:
        client = wfr.client()
        await client.raise_workflow_event(waiting, "x", data=2)
        state = await client.wait_for_workflow_completion(waiting, timeout_in_seconds=120)
        assert state is not None and state.output() == [1, 2]
