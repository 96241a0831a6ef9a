"""Dapr's actor API over HTTP (``/v1.0/actors/{type}/{id}/...``), as Dapr serves it.

- ``GET|POST|PUT|DELETE .../method/{method}``: the actor method's answer (the app's status,
  headers and body), called on whichever sidecar hosts the actor (docs/actors.md);
- ``GET .../state/{key}`` (200, or 204 when absent) and ``POST|PUT .../state`` (a
  transaction ``[{"operation": "upsert"|"delete", "request": {"key", "value",
  "metadata": {"ttlInSeconds"}}}]``, 204);
- ``POST|PUT|GET|DELETE .../reminders/{name}`` (``{dueTime, period, ttl, data}``) and
  ``POST|PUT|DELETE .../timers/{name}`` (``{dueTime, period, ttl, callback, data}``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from tether.platform import errors
from tether.platform.actors import ActorService, StateOperation
from tether.platform.blocks import BlockContext
from tether.platform.errors import ApiError
from tether.platform.invocation.messages import with_trace
from tether.platform.json_body import JsonBodyError, read_json
from tether.sidecar.api_block import ServiceRoutes
from tether.sidecar.invoke import call_timeout, request_headers
from tether.sidecar.request import TRACE_KEY, trace_headers

PREFIX = "/v1.0/actors/{type}/{id}"
VERBS = ("GET", "POST", "PUT", "DELETE")
_MAX_TTL = 2**31 - 1


def _malformed(problem: str) -> ApiError:
    return ApiError(400, errors.MALFORMED_REQUEST, f"failed deserializing HTTP body: {problem}")


async def _body(request: web.Request, kind: type, empty: Any) -> Any:
    try:
        return read_json(await request.read(), kind, empty=empty)
    except JsonBodyError as exc:
        raise _malformed(str(exc)) from None


def _operations(body: list[Any]) -> list[StateOperation]:
    found: list[StateOperation] = []
    for item in body:
        if not isinstance(item, dict):
            raise _malformed("each operation must be an object")
        operation = item.get("operation")
        inner = item.get("request")
        if operation not in ("upsert", "delete"):
            raise _malformed(f"operation must be upsert or delete, not {json.dumps(operation)}")
        if not isinstance(inner, dict) or not isinstance(inner.get("key"), str) \
                or not inner["key"]:
            raise _malformed("each operation needs request.key")
        ttl: int | None = None
        metadata = inner.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("ttlInSeconds") not in (None, ""):
            text = str(metadata["ttlInSeconds"])
            if not text.lstrip("-").isdigit() or not -1 <= int(text) <= _MAX_TTL:
                raise _malformed(f"ttlInSeconds {text!r} is not a whole number of seconds")
            ttl = int(text)
        found.append(StateOperation(operation, inner["key"], inner.get("value"), ttl))
    return found


class ActorsApi(ServiceRoutes[ActorService]):
    """The actors block's HTTP routes over its :class:`ActorService`."""

    def routes(self) -> Sequence[web.RouteDef]:
        method = PREFIX + "/method/{method:.*}"
        return [
            *(web.route(verb, method, self.invoke) for verb in VERBS),
            web.get(PREFIX + "/state/{key}", self.get_state),
            web.post(PREFIX + "/state", self.transaction),
            web.put(PREFIX + "/state", self.transaction),
            *(web.route(verb, PREFIX + "/reminders/{name}", self.reminder)
              for verb in ("GET", "POST", "PUT", "DELETE")),
            *(web.route(verb, PREFIX + "/timers/{name}", self.timer)
              for verb in ("POST", "PUT", "DELETE")),
        ]

    def _actor(self, request: web.Request) -> tuple[str, str]:
        return request.match_info["type"], request.match_info["id"]

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        actor_type, actor_id = self._actor(request)
        headers = request_headers(request)
        if TRACE_KEY in request:  # tracing: the call continues the API call's server span
            headers = with_trace(headers, trace_headers(request))
        reply = await self.service.invoke(actor_type, actor_id, request.match_info["method"],
                                          await request.read(), headers, call_timeout(request))
        return web.Response(status=reply.status, body=reply.body,
                            headers=CIMultiDict(reply.headers))

    async def get_state(self, request: web.Request) -> web.StreamResponse:
        actor_type, actor_id = self._actor(request)
        value = await self.service.get_state(actor_type, actor_id, request.match_info["key"])
        if value is None:
            return web.Response(status=204)
        return web.Response(status=200, body=value, content_type="application/json")

    async def transaction(self, request: web.Request) -> web.StreamResponse:
        actor_type, actor_id = self._actor(request)
        body = await _body(request, list, [])
        await self.service.transaction(actor_type, actor_id, _operations(body))
        return web.Response(status=204)

    async def reminder(self, request: web.Request) -> web.StreamResponse:
        actor_type, actor_id = self._actor(request)
        name = request.match_info["name"]
        if request.method == "GET":
            found = await self.service.get_reminder(actor_type, actor_id, name)
            if found is None:
                raise ApiError(404, "ERR_ACTOR_REMINDER_GET",
                               f"reminder {name} of actor {actor_type}/{actor_id} not found")
            return web.json_response(found.api_body())
        if request.method == "DELETE":
            await self.service.delete_reminder(actor_type, actor_id, name)
            return web.Response(status=204)
        body = await _body(request, dict, {})
        await self.service.create_reminder(
            actor_type, actor_id, name, _text(body, "dueTime"), _text(body, "period"),
            _text(body, "ttl"), body.get("data"),
        )
        return web.Response(status=204)

    async def timer(self, request: web.Request) -> web.StreamResponse:
        actor_type, actor_id = self._actor(request)
        name = request.match_info["name"]
        body = None if request.method == "DELETE" else await _body(request, dict, {})
        await self.service.timer(actor_type, actor_id, name, body)
        return web.Response(status=204)


def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _malformed(f"{name} must be a string, not {json.dumps(value)}")
    return value


def actors_block(context: BlockContext) -> ActorsApi:
    """The actors API; present even without an actor state store (calls still work; state
    and reminders answer Dapr's ERR_ACTOR_RUNTIME_NOT_FOUND)."""
    return ActorsApi(ActorService(context))
