"""Turning a step's actions into outbox records, and relaying them to the broker.

A step's actions are written as outbox records in the same transaction as its history
(instances.InstanceStore.commit_step), so they exist exactly when the step does. Then:

* fast path: the worker hands the records it just committed to :class:`Sender`, which
  publishes them in batches (all instances' records together, one ``publish_batch`` per
  topic) and forgets them with one ``outbox_done``;
* recovery: every worker sweeps the store's pending records of its namespace that are older
  than ``grace`` seconds (their writer died before publishing) and publishes them.

Both may publish a record twice (a crash after publishing and before ``outbox_done``, or two
sweepers): receivers drop orchestration events they have seen by id, and activities run at
least once anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta

from tether.brokers import Broker
from tether.platform.aio import cancel_task
from tether.platform.events import CloudEvent, InvalidCloudEventError
from tether.platform.events.json_format import from_json, to_json
from tether.platform.pubsub.scheduled import publish_at, schedules_natively, unwrap, wrap
from tether.platform.state.store import OutboxRecord, StateStore
from tether.platform.workflows.actions import (
    Action,
    CompleteOrchestration,
    CreateSubOrchestration,
    CreateTimer,
    ScheduleTask,
    TerminateOrchestration,
)
from tether.platform.workflows.durable.codec import activity_task, orchestration_event
from tether.platform.workflows.durable.grouping import Grouped
from tether.platform.workflows.durable.names import Names
from tether.platform.workflows.history import (
    ExecutionTerminated,
    HistoryEvent,
    TimerFired,
    utcnow,
)

log = logging.getLogger(__name__)

DEFAULT_GRACE = 5.0
DEFAULT_SWEEP_INTERVAL = 2.0
SWEEP_BATCH = 1000


class Sender:
    def __init__(self, broker: Broker, store: StateStore, names: Names, *,
                 grace: float = DEFAULT_GRACE,
                 sweep_interval: float = DEFAULT_SWEEP_INTERVAL) -> None:
        self.broker = broker
        self.store = store
        self.names = names
        self.grace = timedelta(seconds=grace)
        self.sweep_interval = sweep_interval
        self._queue: list[OutboxRecord] = []
        self._own: set[str] = set()  # handed to this sender and not yet done
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._tasks: list[asyncio.Task[None]] = []
        #: events published (a figure for tests and logs)
        self.published = 0
        self._pub: Grouped[list[OutboxRecord], None] = Grouped(self._publish_many)

    # --- building records ----------------------------------------------------------------------
    def record(self, topic: str, event: CloudEvent) -> OutboxRecord:
        return OutboxRecord(id=uuid.uuid4().hex, pubsub=self.names.outbox_marker, topic=topic,
                            event=to_json(event))

    def to_instance(self, instance_id: str, event: HistoryEvent,
                    event_id: str | None = None) -> OutboxRecord:
        return self.record(self.names.orchestrations,
                           orchestration_event(instance_id, event, event_id))

    def timer(self, instance_id: str, event: HistoryEvent, due: datetime,
              event_id: str | None = None, now: datetime | None = None) -> OutboxRecord:
        """``event`` delivered to the instance no earlier than ``due`` (through the
        runtime's scheduler; at once when already due)."""
        cloud = orchestration_event(instance_id, event, event_id)
        if due <= (now or utcnow()):
            return self.record(self.names.orchestrations, cloud)
        return self.record(self.names.timers, wrap(cloud, self.names.orchestrations, due))

    def records_for(self, instance_id: str, actions: Sequence[Action],
                    now: datetime) -> list[OutboxRecord]:
        """The records that carry out one step's actions. Ids of events sent to instances
        are deterministic where a repeat must be dropped (timers, results)."""
        out: list[OutboxRecord] = []
        for action in actions:
            if isinstance(action, ScheduleTask):
                out.append(self.record(self.names.activities, activity_task(
                    instance_id, action, f"{instance_id}/task/{action.task_id}")))
            elif isinstance(action, CreateTimer):
                out.append(self.timer(
                    instance_id, TimerFired(task_id=action.task_id, fire_at=action.fire_at,
                                            timestamp=now),
                    action.fire_at, f"{instance_id}/timer/{action.task_id}", now))
            elif isinstance(action, CreateSubOrchestration):
                out.append(self.to_instance(action.instance_id, action.start_event(now),
                                            f"{action.instance_id}/start/{instance_id}"
                                            f"/{action.task_id}"))
            elif isinstance(action, CompleteOrchestration):
                event = action.parent_event(now)
                if event is not None and action.parent is not None:
                    parent = action.parent
                    out.append(self.to_instance(
                        parent.instance_id, event,
                        f"{parent.instance_id}/child/{parent.task_id}"))
            elif isinstance(action, TerminateOrchestration):
                out.append(self.to_instance(action.instance_id, ExecutionTerminated(
                    output=action.output, recursive=action.recursive, timestamp=now)))
            else:  # a new action type the runtime does not know yet: fail loudly
                raise TypeError(f"unknown workflow action {action!r}")
        return out

    # --- relaying ------------------------------------------------------------------------------
    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._relay(), name="workflow-sender"),
                           asyncio.create_task(self._sweep(), name="workflow-outbox-sweep")]

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Publish what was handed over (up to ``drain_timeout`` s), then stop; the rest
        stays in the outbox for a sweeper."""
        # wait_for is safe here: no loop runs on after it; a cancel that 3.11's wait_for
        # swallows (arriving with the result) only lets close() finish its bounded cleanup
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), drain_timeout)
        for task in self._tasks:
            await cancel_task(task)
        self._tasks = []

    def hand(self, records: Sequence[OutboxRecord]) -> None:
        """Records just committed by this process: publish them now."""
        if not records:
            return
        self._queue.extend(records)
        self._own.update(r.id for r in records)
        self._idle.clear()
        self._wake.set()

    async def send_now(self, records: Sequence[OutboxRecord]) -> None:
        """Publish committed records and forget them (the caller waits: the client)."""
        await self._publish(list(records))

    async def _relay(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self._publish(batch)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # the records stay in the outbox: a sweep sends them
                    log.warning("workflow outbox: publishing %d records failed (%s); the "
                                "sweep will retry", len(batch), exc)
                    self._own.difference_update(r.id for r in batch)
                    await asyncio.sleep(0.5)
            self._idle.set()

    async def _publish(self, records: list[OutboxRecord]) -> None:
        """Publish records, then forget them (records of concurrent callers go together)."""
        await self._pub.submit(records)

    async def _publish_many(self, groups: Sequence[list[OutboxRecord]]) -> list[None]:
        records = [r for group in groups for r in group]
        by_topic: dict[str, list[CloudEvent]] = defaultdict(list)
        for record in records:
            try:
                by_topic[record.topic].append(from_json(record.event))
            except InvalidCloudEventError as exc:  # cannot happen for our own records
                log.error("workflow outbox record %s is not a CloudEvent: %s", record.id, exc)
        native = schedules_natively(self.broker)
        for topic, events in by_topic.items():
            if native and topic == self.names.timers:  # Service Bus holds them itself
                held = [unwrap(e) for e in events]
                await publish_at(self.broker, self.names.orchestrations,
                                 [h.event for h in held], [h.due for h in held])
            else:
                await self.broker.publish_batch(topic, events)
            self.published += len(events)
        ids = [r.id for r in records]
        await self.store.outbox_done(ids)
        self._own.difference_update(ids)
        return [None] * len(groups)

    async def _sweep(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval)
            try:
                await self.sweep_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a store or broker hiccup: next round
                log.warning("workflow outbox sweep failed: %s", exc)

    async def sweep_once(self) -> int:
        """Publish our namespace's records older than ``grace`` that no live sender of this
        process holds; returns how many went out."""
        pending = await self.store.outbox_pending(SWEEP_BATCH)
        now = utcnow()
        due: list[OutboxRecord] = []
        for record in pending:
            if record.pubsub != self.names.outbox_marker or record.id in self._own:
                continue
            try:
                event = from_json(record.event)
            except InvalidCloudEventError:
                continue
            if event.time is not None and now - event.time < self.grace:
                continue
            due.append(record)
        if due:
            await self._publish(due)
        return len(due)
