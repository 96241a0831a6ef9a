"""Workflow management on :class:`tether.Client` over the sidecar's workflow HTTP API
(docs/workflows.md, "HTTP API and CLI").

The methods carry the names of Dapr's Python ``DaprClient`` (``start_workflow``,
``get_workflow``, ``raise_workflow_event``, ``terminate_workflow``, ``pause_workflow``,
``resume_workflow``, ``purge_workflow``), with ``workflow_component`` a keyword that
defaults to ``"dapr"``, so Dapr code calling them with keywords ports. Tether adds
``wait_for_workflow_start`` / ``wait_for_workflow_completion`` (polling, as
``DaprWorkflowClient`` names them), ``list_workflows`` and ``get_workflow_history``
(Tether's own endpoints; a Dapr sidecar does not have them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tether.platform.workflows.errors import FailureDetails
from tether.platform.workflows.history import HistoryEvent, event_from_dict
from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_errors import TetherApiError
from tether.sdk.client_http import Call, Reply, segment
from tether.sdk.client_plan import Backoff, Plan

__all__ = ["GetWorkflowResponse", "StartWorkflowResponse", "WorkflowList"]

PREFIX = "/v1.0"
TETHER_PREFIX = "/v1.0-alpha1/workflows/tether"
COMPONENT = "dapr"
FINISHED = frozenset({"COMPLETED", "FAILED", "TERMINATED"})
DEFAULT_WAIT = 60.0
_POLL_FIRST = 0.05
_POLL_MAX = 1.0


def _decode(text: str | None) -> Any:
    """A JSON property as its value; text that is not JSON stays text."""
    if text is None or text == "":
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _time(text: Any) -> datetime:
    return datetime.fromisoformat(str(text).replace("Z", "+00:00"))


@dataclass(frozen=True, slots=True)
class StartWorkflowResponse:
    """Dapr's ``StartWorkflowResponse``."""

    instance_id: str


@dataclass(frozen=True, slots=True)
class GetWorkflowResponse:
    """Dapr's ``GetWorkflowResponse`` (the GET answer), with decoded helpers."""

    instance_id: str
    workflow_name: str
    created_at: datetime
    last_updated_at: datetime
    runtime_status: str
    properties: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_json(cls, body: Any) -> GetWorkflowResponse:
        try:
            return cls(str(body["instanceID"]), str(body.get("workflowName", "")),
                       _time(body["createdAt"]), _time(body["lastUpdatedAt"]),
                       str(body["runtimeStatus"]), dict(body.get("properties") or {}))
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise TetherApiError(200, None, f"unexpected workflow answer {body!r}") from exc

    @property
    def is_finished(self) -> bool:
        """COMPLETED, FAILED or TERMINATED."""
        return self.runtime_status in FINISHED

    @property
    def input(self) -> Any:
        return _decode(self.properties.get("dapr.workflow.input"))

    @property
    def output(self) -> Any:
        return _decode(self.properties.get("dapr.workflow.output"))

    @property
    def custom_status(self) -> Any:
        return _decode(self.properties.get("dapr.workflow.custom_status"))

    @property
    def failure(self) -> FailureDetails | None:
        kind = self.properties.get("dapr.workflow.failure.error_type")
        if kind is None:
            return None
        return FailureDetails(kind, self.properties.get("dapr.workflow.failure.error_message", ""),
                              self.properties.get("dapr.workflow.failure.stack_trace"))


@dataclass(frozen=True, slots=True)
class WorkflowList:
    """One page of ``list_workflows``: each instance as a dict (instanceID, workflowName,
    createdAt, lastUpdatedAt, runtimeStatus, parentInstanceID when a child), newest first."""

    instances: list[dict[str, Any]]
    continuation_token: str | None = None


# --- calls and replies, shared by both clients ---------------------------------------------------

def _base(component: str, instance_id: str) -> str:
    return f"{PREFIX}/workflows/{segment(component)}/{segment(instance_id)}"


def _body(value: Any, raw: bool) -> bytes | None:
    if raw:
        if value is None:
            return None
        if not isinstance(value, bytes | bytearray):
            raise TypeError("send_raw_bytes=True needs bytes")
        return bytes(value)
    return None if value is None else json.dumps(value).encode()


_JSON = {"Content-Type": "application/json"}


def start_call(name: str, input: Any, instance_id: str | None, component: str,
               raw: bool) -> Call:
    params = {"instanceID": instance_id} if instance_id else {}
    return Call("POST", f"{PREFIX}/workflows/{segment(component)}/{segment(name)}/start",
                params, _JSON, _body(input, raw))


def event_call(instance_id: str, event: str, data: Any, component: str, raw: bool) -> Call:
    return Call("POST", f"{_base(component, instance_id)}/raiseEvent/{segment(event)}", {},
                _JSON, _body(data, raw))


def op_call(instance_id: str, op: str, component: str) -> Call:
    return Call("POST", f"{_base(component, instance_id)}/{op}")


def get_call(instance_id: str, component: str) -> Call:
    return Call("GET", _base(component, instance_id))


def list_call(status: str | list[str] | None, name: str | None, limit: int | None,
              token: str | None) -> Call:
    params: dict[str, str] = {}
    if status:
        params["status"] = status if isinstance(status, str) else ",".join(status)
    if name:
        params["name"] = name
    if limit is not None:
        params["limit"] = str(limit)
    if token:
        params["continuationToken"] = token
    return Call("GET", f"{TETHER_PREFIX}/instances", params)


def history_call(instance_id: str) -> Call:
    return Call("GET", f"{TETHER_PREFIX}/{segment(instance_id)}/history")


def started(reply: Reply) -> StartWorkflowResponse:
    body = reply.json()
    if not isinstance(body, dict) or not isinstance(body.get("instanceID"), str):
        raise TetherApiError(reply.status, None, f"unexpected start answer {reply.body!r}")
    return StartWorkflowResponse(body["instanceID"])


def listed(reply: Reply) -> WorkflowList:
    body = reply.json()
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise TetherApiError(reply.status, None, f"unexpected list answer {reply.body!r}")
    return WorkflowList(body["instances"], body.get("continuationToken") or None)


def history_of(reply: Reply) -> list[HistoryEvent]:
    body = reply.json()
    if not isinstance(body, dict) or not isinstance(body.get("events"), list):
        raise TetherApiError(reply.status, None, f"unexpected history answer {reply.body!r}")
    return [event_from_dict(e) for e in body["events"]]


def _timeout_error(instance_id: str, state: GetWorkflowResponse, timeout: float) -> TimeoutError:
    return TimeoutError(f"workflow {instance_id!r} is still {state.runtime_status} after "
                        f"{timeout}s")


Done = Callable[[GetWorkflowResponse], bool]


def _left_pending(state: GetWorkflowResponse) -> bool:
    return state.runtime_status != "PENDING"


def _finished(state: GetWorkflowResponse) -> bool:
    return state.is_finished


def _get(instance_id: str, component: str) -> Plan[GetWorkflowResponse]:
    return GetWorkflowResponse.from_json((yield get_call(instance_id, component)).json())


def _wait(instance_id: str, done: Done, timeout: float) -> Plan[GetWorkflowResponse]:
    backoff = Backoff(timeout, _POLL_FIRST, 1.5, _POLL_MAX)
    while True:
        state = yield from _get(instance_id, COMPONENT)
        if done(state):
            return state
        pause = backoff.pause()
        if pause is None:
            raise _timeout_error(instance_id, state, timeout)
        yield pause


class WorkflowMixin(ClientBase):
    """Workflow management for both clients."""

    @operation
    def start_workflow(self, workflow_name: str, input: Any = None,
                       instance_id: str | None = None, *, workflow_component: str = COMPONENT,
                       send_raw_bytes: bool = False) -> Plan[StartWorkflowResponse]:
        """``POST /v1.0/workflows/dapr/{name}/start``: start an instance (``input`` is sent
        as JSON, or as is with ``send_raw_bytes``); a 409 TetherApiError if an unfinished
        instance has ``instance_id``, a 400 if no running worker hosts the workflow."""
        return started((yield start_call(workflow_name, input, instance_id,
                                         workflow_component, send_raw_bytes)))

    @operation
    def get_workflow(self, instance_id: str, *,
                     workflow_component: str = COMPONENT) -> Plan[GetWorkflowResponse]:
        """``GET /v1.0/workflows/dapr/{instanceID}``; a 404 TetherApiError if unknown."""
        return (yield from _get(instance_id, workflow_component))

    @operation
    def raise_workflow_event(self, instance_id: str, event_name: str, event_data: Any = None,
                             *, workflow_component: str = COMPONENT,
                             send_raw_bytes: bool = False) -> Plan[None]:
        yield event_call(instance_id, event_name, event_data, workflow_component,
                         send_raw_bytes)

    @operation
    def terminate_workflow(self, instance_id: str, *,
                           workflow_component: str = COMPONENT) -> Plan[None]:
        """Terminate the instance and its running child workflows."""
        yield op_call(instance_id, "terminate", workflow_component)

    @operation
    def pause_workflow(self, instance_id: str, *,
                       workflow_component: str = COMPONENT) -> Plan[None]:
        yield op_call(instance_id, "pause", workflow_component)

    @operation
    def resume_workflow(self, instance_id: str, *,
                        workflow_component: str = COMPONENT) -> Plan[None]:
        yield op_call(instance_id, "resume", workflow_component)

    @operation
    def purge_workflow(self, instance_id: str, *,
                       workflow_component: str = COMPONENT) -> Plan[None]:
        """Delete a finished instance's state and history (409 if it has not finished)."""
        yield op_call(instance_id, "purge", workflow_component)

    @operation
    def wait_for_workflow_start(self, instance_id: str, *,
                                timeout_in_seconds: float = DEFAULT_WAIT
                                ) -> Plan[GetWorkflowResponse]:
        """Poll until the instance left PENDING; TimeoutError after the timeout."""
        return (yield from _wait(instance_id, _left_pending, timeout_in_seconds))

    @operation
    def wait_for_workflow_completion(self, instance_id: str, *,
                                     timeout_in_seconds: float = DEFAULT_WAIT
                                     ) -> Plan[GetWorkflowResponse]:
        """Poll until COMPLETED, FAILED or TERMINATED; TimeoutError after the timeout."""
        return (yield from _wait(instance_id, _finished, timeout_in_seconds))

    @operation
    def list_workflows(self, *, status: str | list[str] | None = None, name: str | None = None,
                       limit: int | None = None, continuation_token: str | None = None
                       ) -> Plan[WorkflowList]:
        """Tether only: one page of instances, newest first."""
        return listed((yield list_call(status, name, limit, continuation_token)))

    @operation
    def get_workflow_history(self, instance_id: str) -> Plan[list[HistoryEvent]]:
        """Tether only: the instance's history events (current run)."""
        return history_of((yield history_call(instance_id)))
