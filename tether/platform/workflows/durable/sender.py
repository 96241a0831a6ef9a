"""Turning a step's actions into outbox records, and relaying them to the broker.

A step's actions are written as outbox records in the same transaction as its history
(instances.InstanceStore.commit_step), so they exist exactly when the step does. Then the
state block's outbox relay (tether.platform.state.relay) carries them:

* fast path: the worker hands the records it just committed over, and they are published
  in batches (all instances' records together, one ``publish_batch`` per topic) and
  forgotten with one ``outbox_done``;
* recovery: every worker sweeps the store's pending records of its namespace that are older
  than ``grace`` seconds (their writer died before publishing) and publishes them.

Both may publish a record twice (a crash after publishing and before ``outbox_done``, or two
sweepers): receivers drop orchestration events they have seen by id, and activities run at
least once anyway.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime

from tether.brokers import Broker
from tether.platform.events import CloudEvent
from tether.platform.events.json_format import to_json
from tether.platform.pubsub.scheduled import publish_at, schedules_natively, unwrap, wrap
from tether.platform.state.relay import Relay
from tether.platform.state.store import OutboxRecord, StateStore
from tether.platform.workflows import actions as act
from tether.platform.workflows.durable.codec import activity_task, orchestration_event
from tether.platform.workflows.durable.names import Names
from tether.platform.workflows.history import (
    ExecutionTerminated,
    HistoryEvent,
    TimerFired,
    utcnow,
)

DEFAULT_GRACE = 5.0
DEFAULT_SWEEP_INTERVAL = 2.0
SWEEP_BATCH = 1000


class Sender:
    """Builds a step's outbox records, and relays them (a :class:`Relay` that claims the
    records of this namespace only)."""

    def __init__(self, broker: Broker, store: StateStore, names: Names, *,
                 grace: float = DEFAULT_GRACE,
                 sweep_interval: float = DEFAULT_SWEEP_INTERVAL) -> None:
        self.broker = broker
        self.store = store
        self.names = names
        marker = names.outbox_marker
        self.relay = Relay(f"workflow {names.namespace}", store, self._publish_events,
                           lambda pubsub: pubsub == marker, batch=SWEEP_BATCH,
                           poll_interval=sweep_interval, grace=grace)

    @property
    def published(self) -> int:
        """Events published (a figure for tests and logs)."""
        return self.relay.published

    # --- building records ----------------------------------------------------------------------
    def record(self, topic: str, event: CloudEvent) -> OutboxRecord:
        return OutboxRecord(id=uuid.uuid4().hex, pubsub=self.names.outbox_marker, topic=topic,
                            event=to_json(event))

    def to_instance(self, instance_id: str, event: HistoryEvent,
                    event_id: str | None = None,
                    trace: Mapping[str, str] | None = None) -> OutboxRecord:
        return self.record(self.names.orchestrations,
                           orchestration_event(instance_id, event, event_id, trace))

    def timer(self, instance_id: str, event: HistoryEvent, due: datetime,
              event_id: str | None = None, now: datetime | None = None,
              trace: Mapping[str, str] | None = None) -> OutboxRecord:
        """``event`` delivered to the instance no earlier than ``due`` (through the
        runtime's scheduler; at once when already due)."""
        cloud = orchestration_event(instance_id, event, event_id, trace)
        if due <= (now or utcnow()):
            return self.record(self.names.orchestrations, cloud)
        return self.record(self.names.timers, wrap(cloud, self.names.orchestrations, due))

    def records_for(self, instance_id: str, actions: Sequence[act.Action],
                    now: datetime, trace: Mapping[str, str] | None = None
                    ) -> list[OutboxRecord]:
        """The records that carry out one step's actions. Ids of events sent to instances
        are deterministic where a repeat must be dropped (timers, results). ``trace``: the
        step span's context, carried by the activity tasks and child instances it starts."""
        out: list[OutboxRecord] = []
        for action in actions:
            if isinstance(action, act.ScheduleTask):
                out.append(self.record(self.names.activities, activity_task(
                    instance_id, action, f"{instance_id}/task/{action.task_id}", trace)))
            elif isinstance(action, act.CreateTimer):
                out.append(self.timer(
                    # stamped with when it fires (it is delivered then), not when it was set
                    instance_id, TimerFired(task_id=action.task_id, fire_at=action.fire_at,
                                            timestamp=max(now, action.fire_at)),
                    action.fire_at, f"{instance_id}/timer/{action.task_id}", now))
            elif isinstance(action, act.CreateSubOrchestration):
                out.append(self.to_instance(action.instance_id, action.start_event(now),
                                            f"{action.instance_id}/start/{instance_id}"
                                            f"/{action.task_id}", trace))
            elif isinstance(action, act.CompleteOrchestration):
                event = action.parent_event(now)
                if event is not None and action.parent is not None:
                    parent = action.parent
                    out.append(self.to_instance(
                        parent.instance_id, event,
                        f"{parent.instance_id}/child/{parent.task_id}"))
            elif isinstance(action, act.TerminateOrchestration):
                out.append(self.to_instance(action.instance_id, ExecutionTerminated(
                    output=action.output, recursive=action.recursive, timestamp=now)))
            else:  # a new action type the runtime does not know yet: fail loudly
                raise TypeError(f"unknown workflow action {action!r}")
        return out

    # --- relaying ------------------------------------------------------------------------------
    def start(self) -> None:
        self.relay.start()

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Publish what was handed over (up to ``drain_timeout`` s), then stop; the rest
        stays in the outbox for a sweeper."""
        await self.relay.close(drain_timeout)

    def hand(self, records: Sequence[OutboxRecord]) -> None:
        """Records just committed by this process: publish them now."""
        self.relay.hand(records)

    async def send_now(self, records: Sequence[OutboxRecord]) -> None:
        """Publish committed records and forget them (the caller waits: the client)."""
        await self.relay.send_now(records)

    async def sweep_once(self) -> int:
        """Publish our namespace's records older than ``grace`` that this process has not
        handed over; returns how many went out."""
        return await self.relay.relay_once()

    async def _publish_events(self, pubsub: str, topic: str, events: list[CloudEvent]) -> None:
        if topic == self.names.timers and schedules_natively(self.broker):
            held = [unwrap(e) for e in events]  # Service Bus holds them itself
            await publish_at(self.broker, self.names.orchestrations,
                             [h.event for h in held], [h.due for h in held])
        else:
            await self.broker.publish_batch(topic, events)
