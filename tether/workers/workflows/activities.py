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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from tether.brokers import Broker, Delivery, SubscribeOptions, Subscription
from tether.platform import tracing
from tether.platform.aio import Grouped, cancel_task
from tether.platform.events import CloudEvent
from tether.platform.workflows.actions import ScheduleTask
from tether.platform.workflows.activity import run_activity
from tether.platform.workflows.authoring import WorkflowRegistry
from tether.platform.workflows.durable.codec import (
    orchestration_event,
    read_activity_task,
    trace_of,
)
from tether.platform.workflows.durable.names import Names
from tether.platform.workflows.errors import InvalidHistoryError
from tether.platform.workflows.history import TaskCompleted, TaskFailed

if TYPE_CHECKING:
    from tether.platform.tracing.otel import Tracer

log = logging.getLogger(__name__)


class ActivityWorker:
    def __init__(self, broker: Broker, names: Names, registry: WorkflowRegistry, *,
                 concurrency: int = 256, retry_delay: float = 1.0,
                 app_id: str | None = None) -> None:
        self.broker = broker
        #: whose tracer records the activities (None: no spans)
        self.app_id = app_id
        self.names = names
        self.registry = registry
        self.concurrency = concurrency
        self.retry_delay = retry_delay
        # results of concurrent activities go out as one publish_batch
        self._results: Grouped[CloudEvent, None] = Grouped(self._publish_results)
        self._subscription: Subscription | None = None
        self._task: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        #: activities run by this worker (a figure for tests and logs)
        self.executed = 0

    async def start(self) -> None:
        await self.broker.create_topic(self.names.activities)
        await self.broker.create_topic(self.names.orchestrations)
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
        await self._results.close()

    async def _publish_results(self, events: Sequence[CloudEvent]) -> list[None]:
        await self.broker.publish_batch(self.names.orchestrations, list(events))
        return [None] * len(events)

    async def _run(self, sub: Subscription) -> None:
        async for delivery in sub:
            task = asyncio.create_task(self._handle(delivery))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run_traced(self, tracer: Tracer, delivery: Delivery, instance_id: str,
                          task: ScheduleTask) -> TaskCompleted | TaskFailed:
        """The activity as a span, a child of the step that scheduled it (the task's
        trace context)."""
        attributes: dict[str, str | int] = {
            "dapr.workflow.activity": task.name, "dapr.workflow.instance_id": instance_id,
            "dapr.workflow.task_id": task.task_id,
            "messaging.delivery.count": delivery.delivery_count}
        with tracer.span(f"activity {task.name}", tracing.CONSUMER, trace_of(delivery.event),
                         attributes) as span:
            result = await run_activity(self.registry, instance_id, task)
            if isinstance(result, TaskFailed):
                span.fail(f"{result.failure.error_type}: {result.failure.message}")
            return result

    async def _handle(self, delivery: Delivery) -> None:
        try:
            instance_id, task = read_activity_task(delivery.event)
        except InvalidHistoryError as exc:
            await delivery.dead_letter(str(exc))
            return
        try:
            tracer = tracing.tracer(self.app_id) if self.app_id else None
            if tracer is None:
                result = await run_activity(self.registry, instance_id, task)
            else:
                result = await self._run_traced(tracer, delivery, instance_id, task)
            self.executed += 1
            await self._results.submit(orchestration_event(
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
