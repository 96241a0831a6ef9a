"""``POST|PUT /v1.0/bindings/{name}``: Dapr's output binding call over HTTP.

The body is ``{"data": any, "metadata": {k: v}, "operation": "..."}``: a JSON string in
``data`` reaches the component as its text, any other value as its JSON (as Dapr passes
it). The answer is the component's data (200; 204 when it has none) with its metadata as
``metadata.<key>`` headers.

An async call (``"async": "true"`` in the body's metadata, or the header
``tether-binding-async: true``) is answered 202 with ``{"id": ...}`` once the broker holds it
and runs later, retried and dead-lettered (docs/bindings.md); ``tether-binding-key`` orders
the async calls that share it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from tether.platform import errors
from tether.platform.bindings import BindingRequest, BindingsService
from tether.platform.blocks import BlockContext
from tether.platform.components.metadata import is_truthy
from tether.platform.errors import ApiError
from tether.platform.json_body import JsonBodyError, read_json
from tether.sidecar.api_block import ServiceRoutes
from tether.sidecar.request import header, trace_headers

PATH = "/v1.0/bindings/{name}"
ASYNC_HEADER = "tether-binding-async"
KEY_HEADER = "tether-binding-key"
#: the body metadata key that marks a call async (not passed to the component)
ASYNC_METADATA = "async"
DEFAULT_CONTENT_TYPE = "application/json"
_TRUE_OR_FALSE = ("true", "false", "1", "0", "yes", "no", "on", "off")


def _malformed(problem: str) -> ApiError:
    return ApiError(400, errors.MALFORMED_REQUEST, f"failed deserializing HTTP body: {problem}")


def _data_bytes(body: Mapping[str, Any]) -> bytes:
    if "data" not in body:
        return b""
    data = body["data"]
    if isinstance(data, str):
        return data.encode()
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()


def _metadata(body: Mapping[str, Any]) -> dict[str, str]:
    value = body.get("metadata")
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _malformed(f"metadata must be an object of strings, not {json.dumps(value)}")
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    if bad:
        raise _malformed(f"metadata value of {bad[0]!r} must be a string, "
                         f"not {json.dumps(value[bad[0]])}")
    return dict(value)


def flag(value: str, what: str) -> bool:
    if value.strip().lower() not in _TRUE_OR_FALSE:
        raise ApiError(400, errors.MALFORMED_REQUEST, f"{what} must be true or false")
    return is_truthy(value)


def read_binding_request(raw: bytes, async_header: str | None) -> tuple[BindingRequest, bool]:
    """The call in ``raw`` and whether it is async; 400 in Dapr's shape when unreadable."""
    try:
        body = read_json(raw, dict, empty={})
    except JsonBodyError as exc:
        raise _malformed(str(exc)) from None
    operation = body.get("operation", "")
    if not isinstance(operation, str):
        raise _malformed(f"operation must be a string, not {json.dumps(operation)}")
    metadata = _metadata(body)
    is_async = False
    if ASYNC_METADATA in metadata:
        is_async = flag(metadata.pop(ASYNC_METADATA), "metadata.async")
    if async_header is not None:
        is_async = is_async or flag(async_header, ASYNC_HEADER)
    return BindingRequest(operation=operation, data=_data_bytes(body), metadata=metadata), \
        is_async


class BindingsApi(ServiceRoutes[BindingsService]):
    """The bindings block's HTTP route over its :class:`BindingsService`."""

    def routes(self) -> Sequence[web.RouteDef]:
        return [web.post(PATH, self.invoke), web.put(PATH, self.invoke)]

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        call, is_async = read_binding_request(await request.read(),
                                              header(request, ASYNC_HEADER))
        if is_async:
            call_id = await self.service.invoke_async(name, call, header(request, KEY_HEADER),
                                                      trace_headers(request))
            return web.json_response({"id": call_id}, status=202)
        response = await self.service.invoke(name, call, trace_headers(request))
        headers = {f"metadata.{k}": v.replace("\r", " ").replace("\n", " ")
                   for k, v in response.metadata.items()}
        if not response.data:
            return web.Response(status=204, headers=headers)
        headers["Content-Type"] = response.content_type or DEFAULT_CONTENT_TYPE
        return web.Response(status=200, body=response.data, headers=headers)


def bindings_block(context: BlockContext) -> BindingsApi:
    """The bindings API; present even without bindings, so a call gets Dapr's error shape
    instead of a bare 404."""
    return BindingsApi(BindingsService.from_context(context))
