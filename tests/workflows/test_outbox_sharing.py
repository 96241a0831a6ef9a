"""One state store serving both the workflow runtime (its history and outbox) and the
sidecar's state API with an outbox (whose OutboxRelay publishes the store's pending
records): each publisher publishes and forgets only its own records, so no record is
published by both.

The runtime marks its records' ``pubsub`` field ``tether-workflow:<namespace>`` (never a
pub/sub component the relay has, so the relay leaves them); the runtime's sweep takes only
records with its own marker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tether.platform.components import Component
from tether.platform.events import CloudEvent
from tether.platform.events.json_format import to_json
from tether.platform.pubsub import PubSubRegistry
from tether.platform.state.registry import open_state_store
from tether.platform.state.relay import OutboxRelay
from tether.platform.state.store import OutboxRecord, StateStore
from tether.platform.workflows.durable.names import Names
from tether.platform.workflows.durable.sender import Sender
from tether.platform.workflows.history import ExecutionStarted, utcnow


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[StateStore]:
    opened = await open_state_store(Component(
        name="shared", type="state.sqlite",
        metadata={"connectionString": str(tmp_path / "shared.db")}))
    yield opened
    await opened.close()


def app_record(n: int) -> OutboxRecord:
    """What the state API writes for a transaction with an outbox: the app's own pub/sub."""
    event = CloudEvent(id=f"app-{n}", source="app", type="order.created",
                       data={"n": n}, time=utcnow())
    return OutboxRecord(id=f"app-{n}", pubsub="pubsub", topic="orders", event=to_json(event))


async def pending_ids(store: StateStore) -> set[str]:
    return {r.id for r in await store.outbox_pending(1000)}


async def test_the_relay_and_the_runtime_publish_only_their_own_records(
        store: StateStore, tmp_path: Path) -> None:
    registry = PubSubRegistry([Component(name="pubsub", type="pubsub.tether.embedded",
                                         metadata={"path": str(tmp_path / "broker.db")})])
    broker = await registry.broker("pubsub")
    sender = Sender(broker, store, Names("tether.workflow.orders"), grace=0.0)
    relay = OutboxRelay("shared", store, registry, foreign_grace=0.0)
    try:
        start = ExecutionStarted(name="wf", instance_id="i-1", input=None, timestamp=utcnow())
        runtime_record = sender.to_instance("i-1", start)
        await store.transact([], outbox=[runtime_record, app_record(1)])
        # the relay even treats both as its own (no grace): it still leaves the runtime's
        relay.written([runtime_record.id, "app-1"])
        await relay.relay_once()
        assert relay.published == 1
        assert await pending_ids(store) == {runtime_record.id}

        await store.transact([], outbox=[app_record(2)])
        assert await sender.sweep_once() == 1  # the runtime's record only
        assert sender.published == 1
        assert await pending_ids(store) == {"app-2"}
        # another app's runtime (another namespace) leaves this namespace's records alone
        other = Sender(broker, store, Names("tether.workflow.billing"), grace=0.0)
        await store.transact([], outbox=[sender.to_instance("i-2", start)])
        assert await other.sweep_once() == 0
        assert len(await pending_ids(store)) == 2
    finally:
        await relay.close()
        await registry.close()
