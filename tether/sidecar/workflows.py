"""Dapr's workflow management HTTP API, plus Tether's own instance reads, as a sidecar
block (docs/workflows.md, "HTTP API and CLI"): the routes, what they read of a request and
how they render the answers. The operations and their checks are the
:class:`~tether.platform.workflows.durable.service.WorkflowService`.

Under ``/v1.0``, ``/v1.0-beta1`` and ``/v1.0-alpha1``, component ``dapr``::

    POST workflows/dapr/{name}/start[?instanceID=]        202 {"instanceID": ...}
    GET  workflows/dapr/{instanceID}                      200 Dapr's GetWorkflowResponse
    POST workflows/dapr/{instanceID}/raiseEvent/{event}   202
    POST workflows/dapr/{instanceID}/terminate|pause|resume|purge   202

Tether's own reads, which Dapr's HTTP API lacks (for ``tether workflow list`` and
``tether workflow history``)::

    GET /v1.0-alpha1/workflows/tether/instances[?status=RUNNING,FAILED&name=N&limit=100
                                                 &continuationToken=T]
        200 {"instances": [{instanceID, workflowName, createdAt, lastUpdatedAt,
                            runtimeStatus, parentInstanceID?}], "continuationToken"?: T}
    GET /v1.0-alpha1/workflows/tether/{instanceID}/history
        200 {"instanceID": ..., "events": [{"type": "TaskScheduled", "timestamp": ..., ...}]}

The GET of one instance answers Dapr's ``GetWorkflowResponse`` as protojson writes it:
``instanceID``, ``workflowName``, ``createdAt``, ``lastUpdatedAt`` (RFC 3339, UTC, ``Z``),
``runtimeStatus`` and ``properties`` (strings only) with the ``dapr.workflow.*`` keys.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tether.platform import errors
from tether.platform.blocks import BlockContext
from tether.platform.errors import ApiError
from tether.platform.workflows.durable.client import WorkflowState
from tether.platform.workflows.durable.instances import InstanceMeta
from tether.platform.workflows.durable.service import WorkflowService
from tether.platform.workflows.history import RuntimeStatus
from tether.sidecar.api_block import ServiceRoutes
from tether.sidecar.request import trace_headers

PREFIXES = ("/v1.0", "/v1.0-beta1", "/v1.0-alpha1")
_BASE = "/workflows/{component}/{instance:[^/]*}"
TETHER_PREFIX = "/v1.0-alpha1/workflows/tether"
DEFAULT_LIMIT = 100
MAX_LIMIT = 1000

INPUT = "dapr.workflow.input"
OUTPUT = "dapr.workflow.output"
CUSTOM_STATUS = "dapr.workflow.custom_status"
FAILURE_TYPE = "dapr.workflow.failure.error_type"
FAILURE_MESSAGE = "dapr.workflow.failure.error_message"
FAILURE_STACK = "dapr.workflow.failure.stack_trace"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class WorkflowApi(ServiceRoutes[WorkflowService]):
    """The workflow block's HTTP routes over its :class:`WorkflowService`."""

    def routes(self) -> Sequence[web.RouteDef]:
        # Tether's reads first: Dapr's GET of an instance would match them
        routes = [
            web.get(TETHER_PREFIX + "/instances", self.list_instances),
            web.get(TETHER_PREFIX + "/{instance:[^/]*}/history", self.history),
        ]
        for prefix in PREFIXES:
            base = prefix + _BASE
            routes += [
                web.post(prefix + "/workflows/{component}/{name:[^/]*}/start", self.start_workflow),
                web.get(base, self.get),
                web.post(base + "/raiseEvent/{event:[^/]*}", self.raise_event),
            ]
            routes += [web.post(f"{base}/{name}", _accepting(action)) for name, action in (
                ("terminate", self.service.terminate_workflow),
                ("pause", self.service.pause_workflow),
                ("resume", self.service.resume_workflow),
                ("purge", self.service.purge_workflow),
            )]
        return routes

    # --- Dapr's routes ----------------------------------------------------------------------
    async def start_workflow(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        instance_id = await self.service.start_workflow(
            request.match_info["component"], request.match_info["name"],
            query.get("instanceID") or query.get("instanceId"), await request.read(),
            trace_headers(request))
        return web.json_response({"instanceID": instance_id}, status=202)

    async def get(self, request: web.Request) -> web.StreamResponse:
        component, instance_id = _instance(request)
        state = await self.service.get_workflow(component, instance_id)
        return web.json_response(state_body(state))

    async def raise_event(self, request: web.Request) -> web.StreamResponse:
        component, instance_id = _instance(request)
        await self.service.raise_event(component, instance_id, request.match_info["event"],
                                       await request.read())
        return _accepted()


    # --- Tether's reads ---------------------------------------------------------------------
    async def list_instances(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        statuses = _statuses(q.get("status"))
        limit = _limit(q.get("limit"))
        page = await self.service.list_instances(statuses, q.get("name") or None, limit,
                                                 q.get("continuationToken") or None)
        body: dict[str, Any] = {"instances": [list_item(meta) for meta in page.instances]}
        if page.token:
            body["continuationToken"] = page.token
        return web.json_response(body)

    async def history(self, request: web.Request) -> web.StreamResponse:
        instance_id = request.match_info["instance"]
        events = await self.service.get_history(instance_id)
        return web.json_response({"instanceID": instance_id,
                                  "events": [e.to_dict() for e in events]})


def _instance(request: web.Request) -> tuple[str, str]:
    """The component and instance id of a route on one instance."""
    return request.match_info["component"], request.match_info["instance"]


def _accepted() -> web.StreamResponse:
    return web.Response(status=202)  # no body, as Dapr


def _bad(message: str) -> ApiError:
    return ApiError(400, errors.MALFORMED_REQUEST, message)


def _statuses(text: str | None) -> list[RuntimeStatus]:
    """``?status=``: a comma list of runtime statuses (none: all)."""
    if not text:
        return list(RuntimeStatus)
    wanted = [part.strip().upper() for part in text.split(",") if part.strip()]
    known = {s.value for s in RuntimeStatus}
    unknown = [w for w in wanted if w not in known]
    if unknown or not wanted:
        raise _bad(f"status {text!r}: use a comma list of {', '.join(sorted(known))}")
    return [RuntimeStatus(w) for w in wanted]


def _limit(text: str | None) -> int:
    if text is None or text == "":
        return DEFAULT_LIMIT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        raise _bad(f"limit {text!r} must be a number from 1 to {MAX_LIMIT}")
    return int(text)


# --- answers ------------------------------------------------------------------------------
def timestamp(value: datetime) -> str:
    """protojson's Timestamp text: UTC, ``Z``, and 0, 3 or 6 fraction digits."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    value = value.astimezone(UTC)
    base = value.strftime("%Y-%m-%dT%H:%M:%S")
    micros = value.microsecond
    if micros == 0:
        return base + "Z"
    if micros % 1000 == 0:
        return f"{base}.{micros // 1000:03d}Z"
    return f"{base}.{micros:06d}Z"


def properties(state: WorkflowState) -> dict[str, str]:
    """The ``dapr.workflow.*`` properties: input and custom status always (empty when
    unset, as Dapr's examples show), output only without a failure, failure details only
    on a failure."""
    props = {
        CUSTOM_STATUS: state.serialized_custom_status or "",
        INPUT: state.serialized_input or "",
    }
    failure = state.failure_details
    if failure is None:
        if state.serialized_output is not None:
            props[OUTPUT] = state.serialized_output
    else:
        props[FAILURE_TYPE] = failure.error_type
        props[FAILURE_MESSAGE] = failure.message
        if failure.stack_trace is not None:
            props[FAILURE_STACK] = failure.stack_trace
    return props


def state_body(state: WorkflowState) -> dict[str, Any]:
    """Dapr's GET answer for one instance."""
    return {
        "instanceID": state.instance_id,
        "workflowName": state.name,
        "createdAt": timestamp(state.created_at),
        "lastUpdatedAt": timestamp(state.last_updated_at),
        "runtimeStatus": str(state.runtime_status),
        "properties": properties(state),
    }


def list_item(meta: InstanceMeta) -> dict[str, Any]:
    """One instance of Tether's list."""
    item: dict[str, Any] = {
        "instanceID": meta.instance_id,
        "workflowName": meta.name,
        "createdAt": timestamp(meta.created_at),
        "lastUpdatedAt": timestamp(meta.updated_at),
        "runtimeStatus": meta.status.value,
    }
    if meta.parent is not None:
        item["parentInstanceID"] = meta.parent.instance_id
    return item


def _accepting(action: Callable[[str, str], Awaitable[None]]) -> Handler:
    """A handler for an instance action with no body and no answer but 202 (terminate,
    pause, resume, purge)."""

    async def handler(request: web.Request) -> web.StreamResponse:
        await action(*_instance(request))
        return _accepted()

    return handler


def workflow_block(context: BlockContext) -> WorkflowApi:
    """Always present: with no workflow components, the embedded defaults serve; a bad
    state component stops the sidecar (BlockConfigError)."""
    return WorkflowApi(WorkflowService(context))
