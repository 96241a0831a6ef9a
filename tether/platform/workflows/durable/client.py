"""The workflow client, shaped like Dapr's ``DaprWorkflowClient``.

:class:`AsyncWorkflowClient` is the async one (Dapr's ``dapr.ext.workflow.aio``); the
sidecar's HTTP API, the CLI and ``tether.Client`` build on it. :class:`DaprWorkflowClient`
wraps it for synchronous code (a private event loop in a background thread).

The client writes to the state store (a new instance's metadata, with its start event in
the outbox; purge) and publishes orchestration events (raise, terminate, pause, resume);
the workers do the rest. Reads come from the instance metadata.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import Future
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from tether.platform import tracing
from tether.platform.state.store import ETagMismatchError
from tether.platform.workflows import payload
from tether.platform.workflows.authoring import name_of
from tether.platform.workflows.durable.codec import orchestration_event
from tether.platform.workflows.durable.config import Connection, RuntimeConfig, connect
from tether.platform.workflows.durable.errors import (
    WorkflowAlreadyExistsError,
    WorkflowNotFinishedError,
    WorkflowNotFoundError,
)
from tether.platform.workflows.durable.instances import InstanceMeta, InstanceStore
from tether.platform.workflows.durable.sender import Sender
from tether.platform.workflows.errors import FailureDetails, WorkflowNotRegisteredError
from tether.platform.workflows.history import (
    EventRaised,
    ExecutionResumed,
    ExecutionStarted,
    ExecutionSuspended,
    ExecutionTerminated,
    HistoryEvent,
    RuntimeStatus,
    utcnow,
)

T = TypeVar("T")

DEFAULT_WAIT_TIMEOUT = 60.0
_POLL_FIRST = 0.02
_POLL_MAX = 0.5
REGISTRATION_CACHE_SECONDS = 5.0


@dataclass(frozen=True)
class WorkflowState:
    """One instance's state, with the field names of Dapr's ``WorkflowState``."""

    instance_id: str
    name: str
    runtime_status: RuntimeStatus
    created_at: datetime
    last_updated_at: datetime
    serialized_input: str | None = None
    serialized_output: str | None = None
    serialized_custom_status: str | None = None
    failure_details: FailureDetails | None = None
    parent_instance_id: str | None = None
    scheduled_start_at: datetime | None = None

    @classmethod
    def from_meta(cls, meta: InstanceMeta, fetch_payloads: bool = True) -> WorkflowState:
        return cls(
            instance_id=meta.instance_id, name=meta.name, runtime_status=meta.status,
            created_at=meta.created_at, last_updated_at=meta.updated_at,
            serialized_input=meta.input if fetch_payloads else None,
            serialized_output=meta.output if fetch_payloads else None,
            serialized_custom_status=meta.custom_status if fetch_payloads else None,
            failure_details=meta.failure,
            parent_instance_id=meta.parent.instance_id if meta.parent else None,
            scheduled_start_at=meta.scheduled_start,
        )

    def output(self) -> Any:
        """The decoded JSON output (None if there is none)."""
        return payload.decode(self.serialized_output)


class AsyncWorkflowClient:
    """``async with AsyncWorkflowClient() as client:`` or ``await client.connect()``...
    ``close()``. With no config: the same discovery as WorkflowRuntime."""

    def __init__(self, config: RuntimeConfig | None = None, *,
                 connection: Connection | None = None, app_id: str | None = None) -> None:
        self._config = config or RuntimeConfig()
        #: whose tracer records the starts (docs/observability.md, "Traces")
        self.app_id = app_id or self._config.effective_app_id
        self._conn = connection
        self._owns = connection is None
        self._sender: Sender | None = None
        self._instances: InstanceStore | None = None
        self._registered: dict[str, float] = {}
        if connection is not None:
            self._bind(connection)

    def _bind(self, conn: Connection) -> None:
        self._conn = conn
        self._instances = InstanceStore(conn.store, conn.names)
        self._sender = Sender(conn.broker, conn.store, conn.names)

    async def connect(self) -> None:
        if self._instances is None:
            self._bind(await connect(self._config))

    async def close(self) -> None:
        if self._owns and self._conn is not None:
            await self._conn.close()
            self._conn = None
            self._instances = None

    async def __aenter__(self) -> AsyncWorkflowClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def instances(self) -> InstanceStore:
        if self._instances is None:
            raise RuntimeError("the workflow client is not connected: await connect()")
        return self._instances

    @property
    def _out(self) -> Sender:
        assert self._sender is not None
        return self._sender

    # --- starting ------------------------------------------------------------------------------
    async def schedule_new_workflow(self, workflow: Callable[..., Any] | str, *,
                                    input: Any = None, instance_id: str | None = None,
                                    start_at: datetime | None = None,
                                    trace: Mapping[str, str] | None = None) -> str:
        """Start an instance of ``workflow`` (a function or a registered name); returns its id.

        WorkflowNotRegisteredError if no worker registered the name; WorkflowAlreadyExistsError
        if an unfinished instance has the id (a finished one is replaced). ``trace``: the
        caller's W3C context; the instance keeps it (its start span's when tracing) for the
        spans of its steps and activities."""
        name = name_of(workflow)
        tracer = tracing.tracer(self.app_id) if self.app_id else None
        if tracer is None:
            return await self._schedule(name, input, instance_id, start_at, trace)
        with tracer.span(f"start workflow {name}", tracing.CLIENT, trace,
                         {"dapr.workflow.name": name}) as span:
            iid = await self._schedule(name, input, instance_id, start_at, span.headers())
            span.set("dapr.workflow.instance_id", iid)
            return iid

    async def _schedule(self, name: str, input: Any, instance_id: str | None,
                        start_at: datetime | None, trace: Mapping[str, str] | None) -> str:
        instances = self.instances
        if not await self._is_registered(name):
            raise WorkflowNotRegisteredError(
                f"workflow {name!r} is not registered by any running worker")
        data = payload.encode(input, "the workflow input")
        iid = instance_id or uuid.uuid4().hex
        etag: str | None = None
        old_chunks = 0
        found = await instances.get_meta(iid)
        if found is not None:
            old, etag = found
            if not old.status.is_terminal:
                raise WorkflowAlreadyExistsError(iid, old.status.value)
            old_chunks = old.chunks
        now = utcnow()
        meta = InstanceMeta(instance_id=iid, name=name, created_at=now, updated_at=now,
                            input=data, scheduled_start=start_at,
                            trace=tracing.ensure(trace) if trace else {})
        start = ExecutionStarted(name=name, instance_id=iid, input=data,
                                 scheduled_start=start_at, timestamp=now)
        record = self._out.timer(iid, start, start_at or now, f"{iid}/start/{now.isoformat()}",
                                 now, meta.trace)
        try:
            await instances.create(meta, etag, old_chunks, [record])
        except ETagMismatchError as exc:  # someone else started (or replaced) it meanwhile
            raise WorkflowAlreadyExistsError(iid, "being created") from exc
        try:
            await self._out.send_now([record])
        except Exception:  # it is in the outbox: a worker's sweep publishes it
            pass
        return iid

    async def _is_registered(self, name: str) -> bool:
        # a name seen registered is trusted for a few seconds (registrations last an hour)
        loop = asyncio.get_running_loop()
        if self._registered.get(name, 0.0) > loop.time():
            return True
        if not await self.instances.is_registered("workflow", name):
            return False
        self._registered[name] = loop.time() + REGISTRATION_CACHE_SECONDS
        return True

    # --- reading -------------------------------------------------------------------------------
    async def get_workflow_state(self, instance_id: str, *,
                                 fetch_payloads: bool = True) -> WorkflowState | None:
        """The instance's state, or None if there is no such instance."""
        found = await self.instances.get_meta(instance_id)
        return None if found is None else WorkflowState.from_meta(found[0], fetch_payloads)

    async def get_workflow_history(self, instance_id: str) -> list[HistoryEvent]:
        """The stored history of the current generation (for `tether workflow history`)."""
        if await self.instances.get_meta(instance_id) is None:
            raise WorkflowNotFoundError(instance_id)
        return await self.instances.history(instance_id)

    async def wait_for_workflow_start(self, instance_id: str, *, fetch_payloads: bool = False,
                                      timeout_in_seconds: float = DEFAULT_WAIT_TIMEOUT
                                      ) -> WorkflowState | None:
        """Wait until the instance left PENDING; TimeoutError after the timeout."""
        return await self._wait(instance_id, lambda s: s != RuntimeStatus.PENDING,
                                fetch_payloads, timeout_in_seconds)

    async def wait_for_workflow_completion(self, instance_id: str, *,
                                           fetch_payloads: bool = True,
                                           timeout_in_seconds: float = DEFAULT_WAIT_TIMEOUT
                                           ) -> WorkflowState | None:
        """Wait until COMPLETED, FAILED or TERMINATED; TimeoutError after the timeout."""
        return await self._wait(instance_id, lambda s: s.is_terminal, fetch_payloads,
                                timeout_in_seconds)

    async def _wait(self, instance_id: str, done: Callable[[RuntimeStatus], bool],
                    fetch_payloads: bool, timeout: float) -> WorkflowState | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        pause = _POLL_FIRST
        while True:
            state = await self.get_workflow_state(instance_id, fetch_payloads=fetch_payloads)
            if state is None:
                return None
            if done(state.runtime_status):
                return state
            if loop.time() >= deadline:
                raise TimeoutError(f"workflow {instance_id!r} is still "
                                   f"{state.runtime_status.value} after {timeout}s")
            await asyncio.sleep(min(pause, max(deadline - loop.time(), 0.0)))
            pause = min(pause * 1.5, _POLL_MAX)

    # --- events to an instance ---------------------------------------------------------------
    async def raise_workflow_event(self, instance_id: str, event_name: str, *,
                                   data: Any = None) -> None:
        await self._send(instance_id, EventRaised(
            name=event_name, input=payload.encode(data, "the event data")))

    async def terminate_workflow(self, instance_id: str, *, output: Any = None,
                                 recursive: bool = True) -> None:
        await self._send(instance_id, ExecutionTerminated(
            output=payload.encode(output, "the terminate output"), recursive=recursive))

    async def pause_workflow(self, instance_id: str, reason: str | None = None) -> None:
        await self._send(instance_id, ExecutionSuspended(reason=reason))

    async def resume_workflow(self, instance_id: str, reason: str | None = None) -> None:
        await self._send(instance_id, ExecutionResumed(reason=reason))

    async def _send(self, instance_id: str, event: HistoryEvent) -> None:
        """WorkflowNotFoundError for an unknown instance; events to a finished one are
        accepted and ignored by the engine, as Dapr does."""
        if await self.instances.get_meta(instance_id) is None:
            raise WorkflowNotFoundError(instance_id)
        assert self._conn is not None
        await self._conn.broker.publish(self._conn.names.orchestrations,
                                        orchestration_event(instance_id, event))

    # --- purge -------------------------------------------------------------------------------
    async def purge_workflow(self, instance_id: str, *, recursive: bool = True) -> bool:
        """Delete a finished instance's history and metadata (and its children's, with
        ``recursive``). False if there is no such instance; WorkflowNotFinishedError if it
        has not finished."""
        found = await self.instances.get_meta(instance_id)
        if found is None:
            return False
        meta, etag = found
        if not meta.status.is_terminal:
            raise WorkflowNotFinishedError(instance_id, meta.status.value)
        if recursive:
            for child in meta.children:
                try:
                    await self.purge_workflow(child, recursive=True)
                except WorkflowNotFinishedError:
                    pass  # a child left running (non-recursive terminate) stays
        try:
            await self.instances.delete(meta, etag)
        except ETagMismatchError:  # it changed meanwhile (restarted): check again
            return await self.purge_workflow(instance_id, recursive=recursive)
        return True


class DaprWorkflowClient:
    """The synchronous client (Dapr's ``dapr.ext.workflow.DaprWorkflowClient`` shape).

    Runs an AsyncWorkflowClient on a private event loop in a daemon thread; call
    :meth:`close` when done (or use ``with``)."""

    def __init__(self, config: RuntimeConfig | None = None) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="workflow-client")
        self._thread.start()
        self._client = AsyncWorkflowClient(config)
        try:
            self._call(self._client.connect())
        except BaseException:
            self._stop_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        return future.result()

    def _stop_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def close(self) -> None:
        if self._loop.is_closed():
            return
        try:
            self._call(self._client.close())
        finally:
            self._stop_loop()

    def __enter__(self) -> DaprWorkflowClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def schedule_new_workflow(self, workflow: Callable[..., Any] | str, *, input: Any = None,
                              instance_id: str | None = None,
                              start_at: datetime | None = None) -> str:
        return self._call(self._client.schedule_new_workflow(
            workflow, input=input, instance_id=instance_id, start_at=start_at))

    def get_workflow_state(self, instance_id: str, *,
                           fetch_payloads: bool = True) -> WorkflowState | None:
        return self._call(self._client.get_workflow_state(
            instance_id, fetch_payloads=fetch_payloads))

    def get_workflow_history(self, instance_id: str) -> list[HistoryEvent]:
        return self._call(self._client.get_workflow_history(instance_id))

    def wait_for_workflow_start(self, instance_id: str, *, fetch_payloads: bool = False,
                                timeout_in_seconds: float = DEFAULT_WAIT_TIMEOUT
                                ) -> WorkflowState | None:
        return self._call(self._client.wait_for_workflow_start(
            instance_id, fetch_payloads=fetch_payloads, timeout_in_seconds=timeout_in_seconds))

    def wait_for_workflow_completion(self, instance_id: str, *, fetch_payloads: bool = True,
                                     timeout_in_seconds: float = DEFAULT_WAIT_TIMEOUT
                                     ) -> WorkflowState | None:
        return self._call(self._client.wait_for_workflow_completion(
            instance_id, fetch_payloads=fetch_payloads, timeout_in_seconds=timeout_in_seconds))

    def raise_workflow_event(self, instance_id: str, event_name: str, *,
                             data: Any = None) -> None:
        self._call(self._client.raise_workflow_event(instance_id, event_name, data=data))

    def terminate_workflow(self, instance_id: str, *, output: Any = None,
                           recursive: bool = True) -> None:
        self._call(self._client.terminate_workflow(instance_id, output=output,
                                                   recursive=recursive))

    def pause_workflow(self, instance_id: str, reason: str | None = None) -> None:
        self._call(self._client.pause_workflow(instance_id, reason))

    def resume_workflow(self, instance_id: str, reason: str | None = None) -> None:
        self._call(self._client.resume_workflow(instance_id, reason))

    def purge_workflow(self, instance_id: str, *, recursive: bool = True) -> bool:
        return self._call(self._client.purge_workflow(instance_id, recursive=recursive))
