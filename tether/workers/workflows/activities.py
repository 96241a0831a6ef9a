"""The activity worker: runs activity tasks from the activity topic, any worker any task.

Each task's result (TaskCompleted or TaskFailed) goes back to its instance's orchestration
topic, keyed by the instance id, and only then is the task acked. So an activity runs at
least once: a worker that dies after running it and before the ack has it run again by
another worker (the repeated result is dropped by id by the instance's owner). Results of
many activities are published together (one ``publish_batch`` per round), which is what
makes a fan-out of thousands cheap on the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from tether.brokers import Broker, Delivery, SubscribeOptions, Subscription
from tether.platform.aio import cancel_task
from tether.platform.events import CloudEvent
from tether.platform.workflows.activity import run_activity
from tether.platform.workflows.authoring import WorkflowRegistry
from tether.platform.workflows.durable.codec import orchestration_event, read_activity_task
from tether.platform.workflows.durable.names import Names
from tether.platform.workflows.errors import InvalidHistoryError

log = logging.getLogger(__name__)


class BatchPublisher:
    """``await publish(event)`` returns once the event is on ``topic``; events published
    while a batch is in flight go out together in the next one."""

    def __init__(self, broker: Broker, topic: str) -> None:
        self.broker = broker
        self.topic = topic
        self._queue: list[tuple[CloudEvent, asyncio.Future[None]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="workflow-results")

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None
        for _, future in self._queue:
            if not future.done():
                future.set_exception(asyncio.CancelledError())
        self._queue = []

    async def publish(self, event: CloudEvent) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        self._wake.set()
        await future

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    await self.broker.publish_batch(self.topic, [e for e, _ in batch])
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for _, future in batch:
                    if not future.done():
                        future.set_result(None)


class ActivityWorker:
    def __init__(self, broker: Broker, names: Names, registry: WorkflowRegistry, *,
                 concurrency: int = 256, retry_delay: float = 1.0) -> None:
        self.broker = broker
        self.names = names
        self.registry = registry
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        self._results = BatchPublisher(broker, names.orchestrations)
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        #: activities run by this worker (a figure for tests and logs)
        self.executed = 0

    async def start(self) -> None:
        await self.broker.create_topic(self.names.activities)
        await self.broker.create_topic(self.names.orchestrations)
        self._results.start()
        sub = self.broker.subscribe(self.names.activities, self.names.activities_group,
                                    SubscribeOptions(max_in_flight=self.concurrency))
        await sub.start()
        self._subscription = sub
        self._task = asyncio.create_task(self._run(sub), name="workflow-activities")

    async def stop(self, drain_timeout: float = 10.0) -> None:
        await cancel_task(self._task)
        self._task = None
        if self._running:
            await asyncio.wait(set(self._running), timeout=drain_timeout)
        for task in list(self._running):
            await cancel_task(task)
        sub, self._subscription = self._subscription, None
        if sub is not None:
            await sub.close(drain_timeout)
        await self._results.stop()

    async def _run(self, sub: Subscription) -> None:
        async for delivery in sub:
            task = asyncio.create_task(self._handle(delivery))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _handle(self, delivery: Delivery) -> None:
        try:
            instance_id, task = read_activity_task(delivery.event)
        except InvalidHistoryError as exc:
            await delivery.dead_letter(str(exc))
            return
        try:
            result = await run_activity(self.registry, instance_id, task)
            self.executed += 1
            await self._results.publish(orchestration_event(
                instance_id, result, f"{instance_id}/result/{task.task_id}"))
            await delivery.ack()
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await delivery.defer(0)
            raise
        except Exception as exc:  # the broker failed: run it again later
            log.warning("activity %s of %s: could not send the result (%s); retrying",
                        task.name, instance_id, exc)
            with contextlib.suppress(Exception):
                await delivery.nack(self.retry_delay)
