"""The scheduler: forwards delayed events from a component's schedule topic when due.

It consumes :data:`~.scheduled.SCHEDULE_TOPIC` in the shared group
:data:`~.scheduled.SCHEDULER_GROUP` (every sidecar and ``tether.App`` runs one per pub/sub
component, so they split the partitions and take over from each other). A record that is not
due yet is deferred (``Delivery.defer``: back to the broker engine until due, not a delivery
attempt, unacknowledged on the server); once due, the original event is published to its
topic with its own partition key and only then acknowledged. So:

* a crash while holding redelivers the held events to the next scheduler (durable);
* a crash between the publish and the ack publishes that event again (at-least-once);
* on log backends (Kafka, embedded, memory) the committed offset stays at the oldest held
  record, so a restart also re-reads, and forwards again, the records acknowledged after it.

At most ``max_held`` records are held per scheduler; beyond that the broker stops fetching
(backpressure) and the rest wait on the broker, forwarded late but not lost
(docs/delivery.md, "Delayed publish").
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tether.brokers import Broker, Delivery, SubscribeOptions
from tether.brokers import Subscription as BrokerSubscription
from tether.platform.aio import cancel_task
from tether.platform.pubsub.scheduled import (
    SCHEDULE_TOPIC,
    SCHEDULER_GROUP,
    Scheduled,
    ScheduleError,
    schedules_natively,
    unwrap,
)
from tether.workers.retry import Backoff

log = logging.getLogger(__name__)

#: a timer may fire a hair early against the wall clock; defer a little past the due time
_EPSILON = 0.002


@dataclass(frozen=True, slots=True)
class SchedulerOptions:
    #: records one scheduler holds in memory at once (the schedule subscription's in-flight)
    max_held: int = 100_000
    #: forwards (publishes) running at once
    max_concurrency: int = 64
    #: failed forwards are retried with this backoff, then dead-lettered to
    #: ``tether.scheduled.deadletter`` after ``max_deliveries``
    backoff: Backoff = field(default_factory=lambda: Backoff(initial=1, maximum=60))
    max_deliveries: int = 100
    drain_timeout: float = 10.0
    #: the schedule topic and consumer group (every scheduler of a component must share
    #: them; only tests need others)
    topic: str = SCHEDULE_TOPIC
    group: str = SCHEDULER_GROUP


class Scheduler:
    """One scheduler member for one broker: ``await start()``, later ``await stop()``."""

    def __init__(self, broker: Broker, options: SchedulerOptions | None = None) -> None:
        self.broker = broker
        self.options = options or SchedulerOptions()
        self._subscription: BrokerSubscription | None = None
        self._loop_task: asyncio.Task[None] | None = None
        self._forwards: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(self.options.max_concurrency)
        #: events forwarded by this member (for logs and tests)
        self.forwarded = 0

    async def start(self) -> None:
        await self.broker.create_topic(self.options.topic)
        options = SubscribeOptions(
            max_in_flight=self.options.max_held, max_deliveries=self.options.max_deliveries
        )
        subscription = self.broker.subscribe(self.options.topic, self.options.group, options)
        try:
            await subscription.start()
        except BaseException:  # a failed join (Schedulers retries) must not leave it behind
            with contextlib.suppress(Exception):
                await subscription.close(0)
            raise
        self._subscription = subscription
        self._loop_task = asyncio.create_task(self._run(subscription), name="scheduler")

    @property
    def held(self) -> int:
        """Scheduled records fetched and not yet forwarded."""
        return 0 if self._subscription is None else self._subscription.in_flight

    async def stop(self) -> None:
        """Stop taking records, let forwards in progress finish, leave the group. Held
        records stay unacknowledged on the broker for the next scheduler."""
        await cancel_task(self._loop_task)
        self._loop_task = None
        if self._forwards:
            await asyncio.wait(set(self._forwards), timeout=self.options.drain_timeout)
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            await subscription.close(self.options.drain_timeout)

    async def _run(self, subscription: BrokerSubscription) -> None:
        async for delivery in subscription:
            try:
                await self._take(delivery)
            except asyncio.CancelledError:
                # stopped while taking it: hand it back, so the close drops it at once
                # instead of waiting drain_timeout for a settle that will never come
                await delivery.defer(0)
                raise
            except Exception:  # a broker hiccup on one record must not stop the scheduler
                log.exception("scheduler: handling %s failed; retrying it", delivery)
                with contextlib.suppress(Exception):
                    await delivery.defer(self.options.backoff.initial)

    async def _take(self, delivery: Delivery) -> None:
        try:
            scheduled = unwrap(delivery.event)
        except ScheduleError as exc:
            log.warning("dead-lettering a record of %s: %s", self.options.topic, exc)
            await delivery.dead_letter(str(exc))
            return
        wait = (scheduled.due - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await delivery.defer(wait + _EPSILON)
            return
        await self._slots.acquire()
        task = asyncio.create_task(self._forward(delivery, scheduled))
        self._forwards.add(task)
        task.add_done_callback(self._forwards.discard)

    async def _forward(self, delivery: Delivery, scheduled: Scheduled) -> None:
        """Publish the original event to its topic, then ack (a crash in between
        publishes it again: at-least-once)."""
        try:
            await self.broker.publish(scheduled.topic, scheduled.event)
            await delivery.ack()
            self.forwarded += 1
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # BrokerError, OSError, or a bug: retry later, never lose it
            delay = self.options.backoff.delay(delivery.delivery_count)
            log.warning("could not forward scheduled event %s to %s: %s; retry in %.0fs",
                        scheduled.event.id, scheduled.topic, exc, delay)
            with contextlib.suppress(Exception):
                await delivery.nack(delay)
        finally:
            self._slots.release()


#: a component whose broker cannot be opened is tried again after this (growing to 30 s)
OPEN_RETRY = 1.0
OPEN_RETRY_MAX = 30.0


class Schedulers:
    """One :class:`Scheduler` per pub/sub component, started in the background: a broker
    that is down does not stop the sidecar from serving; its scheduler starts once the
    broker can be reached. Service Bus components need none (they schedule natively)."""

    def __init__(
        self,
        names: Iterable[str],
        open_broker: Callable[[str], Awaitable[Broker]],
        options: SchedulerOptions | None = None,
    ) -> None:
        self._names = list(dict.fromkeys(names))
        self._open = open_broker
        self.options = options or SchedulerOptions()
        self.running: dict[str, Scheduler] = {}
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._run(name), name=f"scheduler:{name}") for name in self._names
        ]

    async def _run(self, name: str) -> None:
        pause = OPEN_RETRY
        while True:
            try:
                broker = await self._open(name)
                if schedules_natively(broker):
                    return
                scheduler = Scheduler(broker, self.options)
                await scheduler.start()
                self.running[name] = scheduler
                log.debug("scheduler for pub/sub %r started", name)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # unreachable broker, closed registry: try later
                log.warning("scheduler for pub/sub %r cannot start yet: %s; retrying in %.0fs",
                            name, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, OPEN_RETRY_MAX)

    async def stop(self) -> None:
        for task in self._tasks:
            await cancel_task(task)
        self._tasks = []
        running, self.running = self.running, {}
        await asyncio.gather(*(s.stop() for s in running.values()), return_exceptions=True)
