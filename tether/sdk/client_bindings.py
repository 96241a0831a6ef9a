"""Output bindings on :class:`tether.Client`: ``invoke_binding`` over the sidecar's
``/v1.0/bindings/{name}`` API (docs/bindings.md), named as in Dapr's Python SDK, and
``submit_binding``, Tether's durable async call (accepted once the broker holds it, run
later with retries and a dead-letter topic)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_errors import TetherApiError
from tether.sdk.client_http import Call, Reply, segment
from tether.sdk.client_plan import Plan

__all__ = ["BindingResponse"]

METADATA_HEADER = "metadata."
KEY_HEADER = "tether-binding-key"


@dataclass(frozen=True, slots=True)
class BindingResponse:
    """What an output binding answered, as Dapr's SDK gives it: ``data`` (bytes),
    ``text()``, ``json()`` and ``binding_metadata``."""

    data: bytes
    binding_metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def text(self) -> str:
        return self.data.decode()

    def json(self) -> Any:
        return json.loads(self.data)


def _data(data: bytes | str) -> str:
    # the HTTP API carries data in a JSON body: a string reaches the component as its text
    if isinstance(data, str):
        return data
    if isinstance(data, bytes | bytearray | memoryview):
        try:
            return bytes(data).decode()
        except UnicodeDecodeError:
            raise ValueError("invoke_binding sends data as UTF-8 text over HTTP; encode "
                             "binary data first (base64, as Dapr's components expect)"
                             ) from None
    raise TypeError(f"invoke_binding sends bytes or str, not {type(data).__name__} "
                    "(json.dumps a value first)")


def binding_call(binding_name: str, operation: str, data: bytes | str,
                 binding_metadata: Mapping[str, str] | None,
                 headers: Mapping[str, str] | None = None) -> Call:
    body = {"operation": operation, "data": _data(data),
            "metadata": {str(k): str(v) for k, v in (binding_metadata or {}).items()}}
    return Call("POST", f"/v1.0/bindings/{segment(binding_name)}", {},
                {"Content-Type": "application/json", **(headers or {})},
                json.dumps(body).encode())


def response_of(reply: Reply) -> BindingResponse:
    metadata = {name[len(METADATA_HEADER):]: value for name, value in reply.headers.items()
                if name.lower().startswith(METADATA_HEADER)}
    content_type = reply.headers.get("Content-Type") if reply.body else None
    return BindingResponse(reply.body, metadata, content_type)


class BindingsMixin(ClientBase):
    """Output bindings for both clients."""

    @operation
    def invoke_binding(
        self,
        binding_name: str,
        operation: str,
        data: bytes | str = "",
        binding_metadata: Mapping[str, str] | None = None,
    ) -> Plan[BindingResponse]:
        """Run ``operation`` on output binding ``binding_name`` and return its answer.
        A failure raises :class:`TetherApiError` (``ERR_INVOKE_OUTPUT_BINDING``)."""
        reply: Reply = yield binding_call(binding_name, operation, data, binding_metadata)
        return response_of(reply)

    @operation
    def submit_binding(
        self,
        binding_name: str,
        operation: str,
        data: bytes | str = "",
        binding_metadata: Mapping[str, str] | None = None,
        key: str | None = None,
    ) -> Plan[str]:
        """Hand ``operation`` to the broker and return once it holds it (202): the call
        runs later, retried while the component fails, dead-lettered when it refuses
        (docs/bindings.md). Calls with the same ``key`` run in order. The call's id."""
        metadata = {**(binding_metadata or {}), "async": "true"}
        headers = {KEY_HEADER: key} if key is not None else None
        reply: Reply = yield binding_call(binding_name, operation, data, metadata, headers)
        body = reply.json()
        call_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(call_id, str):
            raise TetherApiError(reply.status, None, f"unexpected answer {reply.body!r}")
        return call_id
