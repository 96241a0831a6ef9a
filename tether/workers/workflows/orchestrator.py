"""The orchestration worker: owns instances, runs one execution step per batch of events.

It consumes the orchestration topic with ``gate_by_key=False``: every fetched event is
handed over at once and queued per instance id; while an instance is busy with a step, its
new events pile up and the next step takes them all (the fan-in batch). One step:

1. read the instance's metadata (a small read: its ETag fences the write, its version tells
   whether the in-memory state is still current; if not, reload history and replay);
2. drop events whose ids are already in history (redeliveries after a crash between the
   commit and the acks);
3. ``OrchestrationState.process(batch)``: the engine applies the whole batch at once;
4. one ``transact``: a new history chunk, the metadata (conditional on the ETag) and the
   outbox records of the step's actions;
5. hand the records to the Sender, ack the batch.

A crash anywhere before 4 redelivers the events (nothing was written); after 4 the
redelivered events are dropped by id and the actions are in the outbox. Another worker that
took the instance over meanwhile makes 4 fail on the ETag: the step is dropped, the events
redelivered, and the state reloaded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from tether.brokers import Broker, BrokerError, Delivery, SubscribeOptions, Subscription
from tether.platform import tracing
from tether.platform.aio import cancel_task
from tether.platform.state.store import ETagMismatchError, StateStoreError
from tether.platform.workflows.authoring import WorkflowRegistry
from tether.platform.workflows.durable.codec import Inbound, read_orchestration_event
from tether.platform.workflows.durable.instances import (
    CARRIED_IDS,
    InstanceMeta,
    InstanceStore,
)
from tether.platform.workflows.durable.sender import Sender
from tether.platform.workflows.errors import InvalidHistoryError
from tether.platform.workflows.executor import ExecutionResult, OrchestrationState
from tether.platform.workflows.history import (
    ExecutionStarted,
    RuntimeStatus,
    SubOrchestrationCreated,
    utcnow,
)

log = logging.getLogger(__name__)


@dataclass
class OrchestratorOptions:
    #: events fetched and not yet acked (a fan-in of this many completions is one batch)
    max_in_flight: int = 20_000
    #: instances stepping at once
    concurrency: int = 32
    #: instances kept in memory between steps (least recently used ones are dropped)
    max_hot: int = 2_000
    #: a failed step's events are redelivered after this many seconds
    retry_delay: float = 0.5
    max_deliveries: int = 50
    #: history chunks (one per step) after which a step rewrites the history as one chunk
    compact_after: int = 500


@dataclass
class _Hot:
    """An instance kept in memory between steps."""

    state: OrchestrationState
    meta: InstanceMeta | None
    seen: set[str]
    seen_order: list[str] = field(default_factory=list)


class OrchestrationWorker:
    def __init__(self, broker: Broker, instances: InstanceStore, sender: Sender,
                 registry: WorkflowRegistry, options: OrchestratorOptions | None = None,
                 app_id: str | None = None) -> None:
        self.broker = broker
        #: whose tracer records the steps (None: no spans)
        self.app_id = app_id
        self.instances = instances
        self.sender = sender
        self.registry = registry
        self.options = options or OrchestratorOptions()
        self.names = instances.names
        self._inbox: dict[str, list[tuple[Delivery, Inbound]]] = {}
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._hot: OrderedDict[str, _Hot] = OrderedDict()
        self._slots = asyncio.Semaphore(self.options.concurrency)
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        #: figures for tests and logs
        self.steps = 0
        self.events = 0
        self.reloads = 0
        self.duplicates = 0

    async def start(self) -> None:
        await self.broker.create_topic(self.names.orchestrations)
        options = SubscribeOptions(max_in_flight=self.options.max_in_flight,
                                   max_deliveries=self.options.max_deliveries,
                                   gate_by_key=False)
        sub = self.broker.subscribe(self.names.orchestrations, self.names.orchestrations_group,
                                    options)
        await sub.start()
        self._subscription = sub
        self._task = asyncio.create_task(self._run(sub), name="workflow-orchestrator")

    async def stop(self, drain_timeout: float = 10.0) -> None:
        await cancel_task(self._task)
        self._task = None
        busy = set(self._busy.values())
        if busy:
            await asyncio.wait(busy, timeout=drain_timeout)
        for task in list(self._busy.values()):
            await cancel_task(task)
        # events taken but not stepped go back to the broker at once (the close would
        # otherwise wait drain_timeout for them to be settled)
        inbox, self._inbox = self._inbox, {}
        for batch in inbox.values():
            for delivery, _ in batch:
                with contextlib.suppress(Exception):
                    await delivery.defer(0)
        sub, self._subscription = self._subscription, None
        if sub is not None:
            await sub.close(drain_timeout)

    # --- dispatch ------------------------------------------------------------------------------
    async def _run(self, sub: Subscription) -> None:
        async for delivery in sub:
            try:
                inbound = read_orchestration_event(delivery.event)
            except InvalidHistoryError as exc:
                await delivery.dead_letter(str(exc))
                continue
            iid = inbound.instance_id
            self._inbox.setdefault(iid, []).append((delivery, inbound))
            if iid not in self._busy:
                self._busy[iid] = asyncio.create_task(self._drain(iid), name=f"wf:{iid}")

    async def _drain(self, iid: str) -> None:
        try:
            async with self._slots:
                while True:
                    batch = self._inbox.pop(iid, None)
                    if not batch:
                        return
                    try:
                        await self._step(iid, batch)
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:
                        self._hot.pop(iid, None)  # the state may be ahead of the store
                        await self._retry_later(iid, batch, exc)
        finally:
            self._busy.pop(iid, None)
            if self._inbox.get(iid) and self._task is not None:  # arrived while finishing
                self._busy[iid] = asyncio.create_task(self._drain(iid), name=f"wf:{iid}")

    async def _retry_later(self, iid: str, batch: list[tuple[Delivery, Inbound]],
                           exc: Exception) -> None:
        """A lost race or an unreachable store or broker is no fault of the events: they
        come back later without counting as a failed delivery (an outage must not
        dead-letter an instance's events). Anything else (a bug, an undecodable history)
        counts, and dead-letters the events after max_deliveries."""
        transient = isinstance(exc, StateStoreError | BrokerError | OSError)
        level = logging.INFO if isinstance(exc, ETagMismatchError) else logging.WARNING
        log.log(level, "workflow %s: step failed (%s: %s); events will be redelivered", iid,
                type(exc).__name__, exc)
        for delivery, _ in batch:
            with contextlib.suppress(Exception):
                if transient:
                    await delivery.defer(self.options.retry_delay)
                else:
                    await delivery.nack(self.options.retry_delay)

    # --- one step ------------------------------------------------------------------------------
    async def _step(self, iid: str, batch: list[tuple[Delivery, Inbound]]) -> None:
        found = await self.instances.get_meta(iid)
        stored_meta, etag = found if found is not None else (None, None)
        hot = self._hot.get(iid)
        restart = any(isinstance(ib.event, ExecutionStarted) for _, ib in batch)
        if hot is None or _stale(hot, stored_meta) or (restart and hot.state.done):
            hot = await self._load(iid)
            if hot.meta is not None and stored_meta is not None \
                    and hot.meta.version != stored_meta.version:
                raise ETagMismatchError(iid, "the instance changed while loading")
        self._hot[iid] = hot
        self._hot.move_to_end(iid)
        while len(self._hot) > self.options.max_hot:
            self._hot.popitem(last=False)

        fresh: list[Inbound] = []
        for _, ib in batch:
            if ib.id in hot.seen:
                self.duplicates += 1
                continue
            hot.seen.add(ib.id)
            fresh.append(ib)
        if not fresh:
            await _ack_all(batch)
            return
        meta = hot.meta
        if meta is None:
            start = next((ib.event for ib in fresh if isinstance(ib.event, ExecutionStarted)),
                         None)
            if start is None:  # events for an instance that does not exist (purged)
                log.info("workflow %s: dropping %d events for an unknown instance", iid,
                         len(fresh))
                self._hot.pop(iid, None)
                await _ack_all(batch)
                return
            # a child instance: it continues the step that started it
            trace = next((ib.trace for ib in fresh if isinstance(ib.event, ExecutionStarted)),
                         {})
            meta = InstanceMeta(instance_id=iid, name=start.name, input=start.input,
                                parent=start.parent, created_at=start.timestamp, trace=trace)
        tracer = tracing.tracer(self.app_id) if self.app_id else None
        if tracer is None:
            await self._apply(iid, hot, meta, etag, fresh, batch, None)
            return
        attributes: dict[str, str | int] = {
            "dapr.workflow.name": meta.name, "dapr.workflow.instance_id": iid,
            "dapr.workflow.events": len(fresh)}
        # every step of an instance is a child of its start (the context kept with it)
        with tracer.span(f"orchestration {meta.name}", tracing.INTERNAL, meta.trace,
                         attributes) as span:
            status = await self._apply(iid, hot, meta, etag, fresh, batch, span.headers())
            if status is not None:
                span.set("dapr.workflow.status", status.value)
                if status == RuntimeStatus.FAILED:
                    span.fail("the workflow failed")

    async def _apply(self, iid: str, hot: _Hot, meta: InstanceMeta, etag: str | None,
                     fresh: list[Inbound], batch: list[tuple[Delivery, Inbound]],
                     trace: dict[str, str] | None) -> RuntimeStatus | None:
        """Process the fresh events and commit the step; the instance's status after it
        (None: nothing changed). ``trace``: the step span's context, for what it sends."""
        result = hot.state.process([ib.event for ib in fresh], now=utcnow())
        self.steps += 1
        self.events += len(fresh)
        if not result.appended:  # nothing changed (late or duplicate events): no write
            await _ack_all(batch)
            return None
        new_meta = _updated(meta, result)
        records = self.sender.records_for(iid, result.actions, utcnow(), trace)
        ids = [ib.id for ib in fresh]
        appended, reset = list(result.appended), result.history_reset
        if reset:
            ids = hot.seen_order[-CARRIED_IDS:] + ids
            hot.seen_order = list(ids)
            hot.seen = set(ids)
        elif meta.chunks + 1 > self.options.compact_after:
            # compaction: the whole history in one chunk again (a reload reads one key)
            stored = await self.instances.load(iid)
            if stored.meta is None or stored.meta.version != meta.version:
                raise ETagMismatchError(iid, "the instance changed while compacting")
            appended = stored.events + appended
            ids = stored.seen_order + ids
            hot.seen_order = list(ids)
            reset = True
        else:
            hot.seen_order.extend(ids)
        written = await self.instances.commit_step(
            new_meta, etag, appended, ids, reset=reset, outbox=records)
        hot.meta = written
        self.sender.hand(records)
        await _ack_all(batch)
        return new_meta.status

    async def _load(self, iid: str) -> _Hot:
        self.reloads += 1
        loaded = await self.instances.load(iid)
        if loaded.events:
            state = OrchestrationState.replay(self.registry, iid, loaded.events)
        else:
            state = OrchestrationState(self.registry, iid)
        return _Hot(state, loaded.meta, loaded.seen, loaded.seen_order)


def _stale(hot: _Hot, stored: InstanceMeta | None) -> bool:
    if stored is None:
        return hot.meta is not None  # purged meanwhile
    return hot.meta is None or hot.meta.version != stored.version


def _updated(meta: InstanceMeta, result: ExecutionResult) -> InstanceMeta:
    children = list(meta.children)
    for ev in result.appended:
        if isinstance(ev, SubOrchestrationCreated) and ev.instance_id not in children:
            children.append(ev.instance_id)
    status = result.status
    return replace(
        meta, status=status, name=result.name or meta.name,
        input=result.input if result.input is not None else meta.input,
        output=result.output, failure=result.failure,
        custom_status=result.custom_status, children=children,
        scheduled_start=meta.scheduled_start if status == RuntimeStatus.PENDING else None,
    )


async def _ack_all(batch: list[tuple[Delivery, Inbound]]) -> None:
    await asyncio.gather(*(d.ack() for d, _ in batch))
