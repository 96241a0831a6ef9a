"""Actor calls on :class:`tether.Client`: a method of an actor, its state, its reminders,
over the sidecar's ``/v1.0/actors`` API (docs/actors.md). Dapr's Python SDK has these on
``ActorProxy`` and the actor runtime; here they are plain client calls."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_http import Call, Reply, segment
from tether.sdk.client_invoke import (
    TIMEOUT_HEADER,
    InvokeMethodError,
    response_of,
    seconds_header,
)
from tether.sdk.client_invoke import InvokeMethodResponse as ActorResponse
from tether.sdk.client_plan import Plan, Send

__all__ = ["ActorResponse"]


def _actor(actor_type: str, actor_id: str) -> str:
    return f"/v1.0/actors/{segment(actor_type)}/{segment(actor_id)}"


def _json_call(method: str, path: str, body: object) -> Call:
    return Call(method, path, {}, {"Content-Type": "application/json"},
                json.dumps(body).encode())


class ActorsMixin(ClientBase):
    """Actor calls for both clients."""

    @operation
    def invoke_actor(self, actor_type: str, actor_id: str, method: str,
                     data: bytes | str = b"", timeout: float | None = None,
                     ) -> Plan[ActorResponse]:
        """Call ``method`` of actor ``actor_type/actor_id`` wherever it is hosted; the
        method's answer. A non-2xx answer raises :class:`InvokeMethodError`."""
        headers = {"Content-Type": "application/json"}
        if timeout is not None:
            headers[TIMEOUT_HEADER] = seconds_header(timeout)
        body = data.encode() if isinstance(data, str) else bytes(data)
        call = Call("PUT", f"{_actor(actor_type, actor_id)}/method/{segment(method)}", {},
                    headers, body)
        reply: Reply = yield Send(call)
        response = response_of(reply)
        if not reply.ok:
            raise InvokeMethodError(reply.error(), response)
        return response

    @operation
    def get_actor_state(self, actor_type: str, actor_id: str, key: str) -> Plan[Any]:
        """The actor's state item ``key`` (its JSON value), None when absent."""
        reply: Reply = yield Call("GET", f"{_actor(actor_type, actor_id)}/state/{segment(key)}",
                                  {}, {}, b"")
        return reply.json() if reply.status == 200 else None

    @operation
    def save_actor_state(self, actor_type: str, actor_id: str,
                         upserts: Mapping[str, Any] | None = None,
                         deletes: Sequence[str] = ()) -> Plan[None]:
        """Upsert and delete items of the actor's state in one transaction."""
        ops: list[dict[str, Any]] = [
            {"operation": "upsert", "request": {"key": k, "value": v}}
            for k, v in (upserts or {}).items()
        ]
        ops += [{"operation": "delete", "request": {"key": k}} for k in deletes]
        yield _json_call("POST", f"{_actor(actor_type, actor_id)}/state", ops)

    @operation
    def register_actor_reminder(self, actor_type: str, actor_id: str, name: str,
                                due_time: str = "", period: str = "", ttl: str = "",
                                data: Any = None) -> Plan[None]:
        """A durable reminder (Dapr's dueTime/period/ttl syntax, docs/actors.md)."""
        body = {"dueTime": due_time, "period": period, "ttl": ttl, "data": data}
        yield _json_call("POST", f"{_actor(actor_type, actor_id)}/reminders/{segment(name)}",
                         body)

    @operation
    def unregister_actor_reminder(self, actor_type: str, actor_id: str,
                                  name: str) -> Plan[None]:
        yield Call("DELETE", f"{_actor(actor_type, actor_id)}/reminders/{segment(name)}",
                   {}, {}, b"")
