"""WorkflowRuntime: register workflows and activities, then run the workers in this process.

    wfr = WorkflowRuntime()            # or WorkflowRuntime(broker_url=..., state_store=...,
                                       #                    app_id=...)
    @wfr.workflow(name="order")
    def order(ctx, input): ...
    wfr.start()                        # background thread; or: async with wfr: ...
    ...
    wfr.shutdown()

Started, it runs an orchestration worker, an activity worker, a scheduler for the durable
timers, the outbox sender, and a heartbeat that registers the hosted workflow and activity
names in the state store (so a client refuses a name nobody hosts). Any number of processes
may run the same runtime: they share the work through the broker's consumer groups.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path
from typing import Any

from tether.platform import tracing
from tether.platform.aio import cancel_task
from tether.platform.components import Component
from tether.platform.pubsub.scheduled import schedules_natively
from tether.platform.workflows.authoring import WorkflowRegistry
from tether.platform.workflows.durable.client import AsyncWorkflowClient
from tether.platform.workflows.durable.config import (
    NO_APP_ID,
    Connection,
    RuntimeConfig,
    connect,
)
from tether.platform.workflows.durable.instances import InstanceStore
from tether.platform.workflows.durable.sender import Sender
from tether.workers.scheduler import Scheduler, SchedulerOptions
from tether.workers.workflows.activities import ActivityWorker
from tether.workers.workflows.orchestrator import (
    OrchestrationWorker,
    OrchestratorOptions,
)

log = logging.getLogger(__name__)

#: how long a registration stays valid without a heartbeat (a worker restarting within it
#: keeps its names startable; PENDING instances wait for it)
REGISTRATION_TTL = timedelta(hours=1)
HEARTBEAT_SECONDS = 60.0


class WorkflowRuntime(WorkflowRegistry):
    """Dapr's ``WorkflowRuntime``: decorators from WorkflowRegistry, plus start/shutdown."""

    def __init__(self, config: RuntimeConfig | None = None, *, broker_url: str | None = None,
                 state_store: Component | None = None, namespace: str | None = None,
                 app_id: str | None = None, base_dir: Path | None = None,
                 orchestrator: OrchestratorOptions | None = None,
                 activity_concurrency: int = 256, sender_grace: float = 5.0) -> None:
        super().__init__()
        config = config or RuntimeConfig()
        if broker_url is not None:
            config.broker_url = broker_url
        if state_store is not None:
            config.state_store = state_store
        if namespace is not None:
            config.namespace = namespace
        if app_id is not None:
            config.app_id = app_id
        if base_dir is not None:
            config.base_dir = base_dir
        self.config = config
        self.orchestrator_options = orchestrator or OrchestratorOptions()
        self.activity_concurrency = activity_concurrency
        self.sender_grace = sender_grace
        self.connection: Connection | None = None
        self.orchestrator: OrchestrationWorker | None = None
        self.activity_worker: ActivityWorker | None = None
        self.sender: Sender | None = None
        self.scheduler: Scheduler | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: whether start turned tracing on (the OTEL_* variables), so shutdown turns it off
        self._traces = False

    def configure(self, *, broker: str | None = None,
                  resources_path: str | None = None) -> None:
        """What `tether worker --broker / --resources-path` set (None: leave as is)."""
        if broker is not None:
            self.config.broker_url = broker
        if resources_path is not None:
            self.config.resources_path = resources_path

    @property
    def app_id(self) -> str:
        """The app the runtime's spans are recorded for (their ``service.name``)."""
        return self.config.effective_app_id or NO_APP_ID

    @property
    def namespace(self) -> str:
        return self.config.names.namespace

    # --- async lifecycle -----------------------------------------------------------------------
    async def start_async(self) -> None:
        if self.connection is not None:
            return
        if tracing.tracer(self.app_id) is None:  # none yet: the OTEL_* variables may ask
            self._traces = tracing.configure(self.app_id, tracing.from_env()) is not None
        try:
            conn = await connect(self.config)
        except BaseException:
            await self._stop_tracing()
            raise
        self.connection = conn
        try:
            instances = InstanceStore(conn.store, conn.names)
            await self.register_names(instances)
            for topic in (conn.names.orchestrations, conn.names.activities, conn.names.timers):
                await conn.broker.create_topic(topic)
            self.sender = Sender(conn.broker, conn.store, conn.names, grace=self.sender_grace)
            self.sender.start()
            if not schedules_natively(conn.broker):
                self.scheduler = Scheduler(conn.broker, SchedulerOptions(
                    topic=conn.names.timers, group=conn.names.timers_group))
                await self.scheduler.start()
            self.activity_worker = ActivityWorker(conn.broker, conn.names, self,
                                                  concurrency=self.activity_concurrency,
                                                  app_id=self.app_id)
            await self.activity_worker.start()
            self.orchestrator = OrchestrationWorker(conn.broker, instances, self.sender, self,
                                                    self.orchestrator_options, self.app_id)
            await self.orchestrator.start()
            self._heartbeat = asyncio.create_task(self._beat(instances),
                                                  name="workflow-heartbeat")
        except BaseException:
            await self.shutdown_async()
            raise
        log.info("workflow runtime started: %d workflows, %d activities (namespace %s)",
                 len(self.workflows), len(self.activities), conn.names.namespace)

    async def shutdown_async(self, drain_timeout: float = 10.0) -> None:
        await cancel_task(self._heartbeat)
        self._heartbeat = None
        if self.orchestrator is not None:
            await self.orchestrator.stop(drain_timeout)
            self.orchestrator = None
        if self.activity_worker is not None:
            await self.activity_worker.stop(drain_timeout)
            self.activity_worker = None
        if self.scheduler is not None:
            await self.scheduler.stop()
            self.scheduler = None
        if self.sender is not None:
            await self.sender.close()
            self.sender = None
        conn, self.connection = self.connection, None
        if conn is not None:
            await conn.close()
        await self._stop_tracing()

    async def _stop_tracing(self) -> None:
        if self._traces:  # after the workers: their last spans are exported too
            self._traces = False
            await tracing.shutdown(self.app_id)

    async def __aenter__(self) -> WorkflowRuntime:
        await self.start_async()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.shutdown_async()

    async def register_names(self, instances: InstanceStore) -> None:
        await instances.register("workflow", self.workflows, REGISTRATION_TTL)
        await instances.register("activity", self.activities, REGISTRATION_TTL)

    async def _beat(self, instances: InstanceStore) -> None:
        while True:
            await asyncio.sleep(HEARTBEAT_SECONDS)
            try:
                await self.register_names(instances)
            except Exception as exc:  # the store is down: try again next beat
                log.warning("workflow runtime: heartbeat failed: %s", exc)

    def client(self) -> AsyncWorkflowClient:
        """An async client on this runtime's connection (the runtime must be started)."""
        if self.connection is None:
            raise RuntimeError("the workflow runtime is not started")
        return AsyncWorkflowClient(connection=self.connection, app_id=self.app_id)

    # --- sync lifecycle (Dapr's start()/shutdown()) ---------------------------------------------
    def start(self) -> None:
        """Start the workers on a background thread and return once they run."""
        if self._thread is not None:
            return
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, daemon=True, name="workflow-runtime")
        thread.start()
        self._loop, self._thread = loop, thread
        try:
            self._call(self.start_async())
        except BaseException:
            self._stop_thread()
            raise

    def shutdown(self) -> None:
        if self._thread is None:
            return
        try:
            self._call(self.shutdown_async())
        finally:
            self._stop_thread()

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def _stop_thread(self) -> None:
        loop, thread = self._loop, self._thread
        self._loop = self._thread = None
        if loop is None or thread is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        with contextlib.suppress(Exception):
            loop.close()
