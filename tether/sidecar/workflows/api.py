"""Dapr's workflow management HTTP API as a sidecar building block (docs/workflows.md,
"HTTP API and CLI").

Under ``/v1.0``, ``/v1.0-beta1`` and ``/v1.0-alpha1``, component ``dapr``::

    POST workflows/dapr/{name}/start[?instanceID=]        202 {"instanceID": ...}
    GET  workflows/dapr/{instanceID}                      200 Dapr's GetWorkflowResponse
    POST workflows/dapr/{instanceID}/raiseEvent/{event}   202
    POST workflows/dapr/{instanceID}/terminate|pause|resume|purge   202

plus Tether's own reads (``api_tether.py``): the instance list and one instance's history.
Every call goes through the runtime's workflow client on the broker and state store that
``api_config.py`` picks; workers (``WorkflowRuntime``, in the app or ``tether worker``) run
the instances. Errors use Dapr's codes; where Dapr answers 500 for the caller's mistake,
Tether answers 4xx (409 for a duplicate running id and for purging an unfinished
instance, 400 for a workflow name no running worker registered, 404 for an unknown id).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol

from aiohttp import web

from tether.platform import errors
from tether.platform.blocks import BlockContext
from tether.platform.errors import ApiError
from tether.platform.workflows.durable.config import Connection, RuntimeConfig, connect
from tether.platform.workflows.durable.errors import (
    WorkflowAlreadyExistsError,
    WorkflowNotFinishedError,
    WorkflowNotFoundError,
)
from tether.platform.workflows.errors import WorkflowNotRegisteredError
from tether.platform.workflows.history import HistoryEvent
from tether.sidecar.workflows import shape
from tether.sidecar.workflows.components import WorkflowBackend, choose_backend

log = logging.getLogger(__name__)

PREFIXES = ("/v1.0", "/v1.0-beta1", "/v1.0-alpha1")
COMPONENT = "dapr"
_BASE = "/workflows/{component}/{instance:[^/]*}"


class WorkflowClient(Protocol):
    """The part of the runtime's ``AsyncWorkflowClient`` the API calls."""

    async def schedule_new_workflow(self, workflow: str, *, input: Any = None,
                                    instance_id: str | None = None,
                                    start_at: datetime | None = None) -> str: ...
    async def get_workflow_state(self, instance_id: str, *,
                                 fetch_payloads: bool = True) -> shape.State | None: ...
    async def get_workflow_history(self, instance_id: str) -> list[HistoryEvent]: ...
    async def raise_workflow_event(self, instance_id: str, event_name: str, *,
                                   data: Any = None) -> None: ...
    async def terminate_workflow(self, instance_id: str, *, output: Any = None,
                                 recursive: bool = True) -> None: ...
    async def pause_workflow(self, instance_id: str, reason: str | None = None) -> None: ...
    async def resume_workflow(self, instance_id: str, reason: str | None = None) -> None: ...
    async def purge_workflow(self, instance_id: str, *, recursive: bool = True) -> bool: ...


Opener = Callable[[], Awaitable[tuple[WorkflowClient, Connection]]]


def _failed(status: int, code: str, message: str, exc: BaseException) -> ApiError:
    if status >= 500:
        log.warning("workflow API: %s", message, exc_info=exc)
    return ApiError(status, code, message)


class WorkflowApi:
    """The block: routes, and the client connection it opens on first use."""

    def __init__(self, opener: Opener) -> None:
        self._opener = opener
        self._client: WorkflowClient | None = None
        self.connection: Connection | None = None
        self._lock = asyncio.Lock()

    def routes(self) -> Sequence[web.RouteDef]:
        from tether.sidecar.workflows.reads import TetherReads

        reads = TetherReads(self)
        routes: list[web.RouteDef] = list(reads.routes())  # before the GET it would match
        for prefix in PREFIXES:
            base = prefix + _BASE
            routes += [
                web.post(prefix + "/workflows/{component}/{name:[^/]*}/start", self.start_workflow),
                web.get(base, self.get),
                web.post(base + "/raiseEvent/{event:[^/]*}", self.raise_event),
                web.post(base + "/terminate", self.terminate),
                web.post(base + "/pause", self.pause),
                web.post(base + "/resume", self.resume),
                web.post(base + "/purge", self.purge),
            ]
        return routes

    async def start(self) -> None:
        """Nothing to open yet: the broker and store open on the first workflow call."""
        return None

    async def close(self) -> None:
        conn, self.connection, self._client = self.connection, None, None
        if conn is not None:
            await conn.close()

    async def client(self, code: str) -> WorkflowClient:
        """The connected client; a broker or store that cannot be opened is a 500 with the
        operation's ``code`` (the next call tries again)."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client, self.connection = await self._opener()
                except Exception as exc:
                    raise _failed(500, code, "cannot open the workflow broker or state "
                                  f"store: {exc}", exc) from exc
            return self._client

    # --- Dapr's routes ----------------------------------------------------------------------
    async def start_workflow(self, request: web.Request) -> web.StreamResponse:
        _component(request)
        name = request.match_info["name"]
        query = request.query
        instance_id = query.get("instanceID") or query.get("instanceId") or str(uuid.uuid4())
        shape.check_new_instance_id(instance_id)
        if not name:
            raise ApiError(400, errors.WORKFLOW_NAME_MISSING, "workflow name is not configured")
        data = shape.json_payload(await request.read(), "the workflow input")
        client = await self.client(errors.START_WORKFLOW)
        what = f"error starting workflow '{name}'"
        try:
            await client.schedule_new_workflow(name, input=data, instance_id=instance_id)
        except WorkflowAlreadyExistsError as exc:
            raise _failed(409, errors.START_WORKFLOW, f"{what}: {exc}", exc) from exc
        except WorkflowNotRegisteredError as exc:
            raise _failed(400, errors.START_WORKFLOW, f"{what}: {exc}", exc) from exc
        except Exception as exc:
            raise _failed(500, errors.START_WORKFLOW, f"{what}: {exc}", exc) from exc
        return web.json_response({"instanceID": instance_id}, status=202)

    async def get(self, request: web.Request) -> web.StreamResponse:
        instance_id = _instance(request)
        client = await self.client(errors.GET_WORKFLOW)
        try:
            state = await client.get_workflow_state(instance_id, fetch_payloads=True)
        except Exception as exc:
            raise _failed(500, errors.GET_WORKFLOW, "error while getting workflow info on "
                          f"instance '{instance_id}': {exc}", exc) from exc
        if state is None:
            raise shape.not_found(instance_id)
        return web.json_response(shape.state_body(state))

    async def raise_event(self, request: web.Request) -> web.StreamResponse:
        instance_id = _instance(request)
        event = request.match_info["event"]
        if not event:
            raise ApiError(400, errors.WORKFLOW_EVENT_NAME_MISSING, "missing workflow event name")
        data = shape.json_payload(await request.read(), "the event data")
        client = await self.client(errors.RAISE_EVENT_WORKFLOW)
        await _act(client.raise_workflow_event(instance_id, event, data=data), instance_id,
                   errors.RAISE_EVENT_WORKFLOW, f"error raising event on workflow '{instance_id}'")
        return _accepted()

    async def terminate(self, request: web.Request) -> web.StreamResponse:
        instance_id = _instance(request)
        client = await self.client(errors.TERMINATE_WORKFLOW)
        # recursive, as Dapr's API: running child workflows are terminated too
        await _act(client.terminate_workflow(instance_id, recursive=True), instance_id,
                   errors.TERMINATE_WORKFLOW, f"error terminating workflow '{instance_id}'")
        return _accepted()

    async def pause(self, request: web.Request) -> web.StreamResponse:
        instance_id = _instance(request)
        client = await self.client(errors.PAUSE_WORKFLOW)
        await _act(client.pause_workflow(instance_id), instance_id, errors.PAUSE_WORKFLOW,
                   f"error pausing workflow {instance_id}")
        return _accepted()

    async def resume(self, request: web.Request) -> web.StreamResponse:
        instance_id = _instance(request)
        client = await self.client(errors.RESUME_WORKFLOW)
        await _act(client.resume_workflow(instance_id), instance_id, errors.RESUME_WORKFLOW,
                   f"error resuming workflow {instance_id}")
        return _accepted()

    async def purge(self, request: web.Request) -> web.StreamResponse:
        instance_id = _instance(request)
        client = await self.client(errors.PURGE_WORKFLOW)
        what = f"error purging workflow {instance_id}"
        try:
            purged = await client.purge_workflow(instance_id, recursive=True)
        except WorkflowNotFinishedError as exc:
            raise _failed(409, errors.PURGE_WORKFLOW, f"{what}: {exc}", exc) from exc
        except Exception as exc:
            raise _failed(500, errors.PURGE_WORKFLOW, f"{what}: {exc}", exc) from exc
        if not purged:
            raise shape.not_found(instance_id)
        return _accepted()


def _component(request: web.Request) -> None:
    component = request.match_info["component"]
    if component != COMPONENT:
        raise ApiError(400, errors.WORKFLOW_COMPONENT_NOT_FOUND,
                       f"workflow component '{component}' does not exist")


def _instance(request: web.Request) -> str:
    _component(request)
    instance_id = request.match_info["instance"]
    shape.require_instance_id(instance_id)
    return instance_id


def _accepted() -> web.StreamResponse:
    return web.Response(status=202)  # no body, as Dapr


async def _act(call: Awaitable[None], instance_id: str, code: str, what: str) -> None:
    """Run one instance operation: an unknown id is a 404, any other failure a 500."""
    try:
        await call
    except WorkflowNotFoundError as exc:
        raise shape.not_found(instance_id) from exc
    except Exception as exc:
        raise _failed(500, code, f"{what}: {exc}", exc) from exc


def open_backend(backend: WorkflowBackend, context: BlockContext) -> Opener:
    """How the block connects: the app's pub/sub broker (shared with the sidecar's
    publish API, so not closed by the block) and its own state store connection."""

    async def opener() -> tuple[WorkflowClient, Connection]:
        from tether.platform.workflows.durable.client import AsyncWorkflowClient

        broker = (await context.pubsub.broker(backend.pubsub.name)
                  if backend.pubsub is not None else None)
        # the app's namespace: the one its WorkflowRuntime derives from the same app id
        config = RuntimeConfig(broker=broker, state_store=backend.state, resources_path=None,
                               app_id=context.app_id)
        conn = await connect(config)
        return AsyncWorkflowClient(connection=conn), conn

    return opener


def workflow_block(context: BlockContext) -> WorkflowApi:
    """Always present: with no workflow components, the embedded defaults serve (see
    ``api_config``); a bad state component stops the sidecar (BlockConfigError)."""
    return WorkflowApi(open_backend(choose_backend(context.components), context))
