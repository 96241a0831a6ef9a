"""Service invocation over HTTP as Dapr serves it: ``/v1.0/invoke/{app-id}/method/{path}``
for every verb, and the proxy form (any request carrying ``dapr-app-id``).

The method path is passed on as received (slashes and percent-encoding kept) with the query
string; the headers go without the hop-by-hop ones and the sidecar's own; the answer is the
target app's status, headers and body. ``tether-invoke-timeout`` (a duration: ``5s``,
``500ms``, or seconds) sets the call's deadline; otherwise it is a minute. The calls travel
on the broker (:mod:`tether.platform.invocation`, docs/invocation.md).

``tether-invoke-async: true`` (or the query parameter ``metadata.async=true``) makes the
call durable and async: 202 with ``{"id": ...}`` once the broker holds it, then delivered
to the app at least once, in order per ``tether-invoke-key``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from aiohttp import web
from multidict import CIMultiDict

from tether.platform import errors
from tether.platform.blocks import BlockContext
from tether.platform.components.metadata import DurationError, parse_duration
from tether.platform.errors import ApiError
from tether.platform.invocation import InvocationService
from tether.platform.invocation.messages import Headers, end_to_end, with_trace
from tether.sidecar.api_block import ServiceRoutes
from tether.sidecar.request import TRACE_KEY, trace_headers
from tether.workers.app_channel import API_TOKEN_HEADER

PREFIX = "/v1.0/invoke/"
APP_ID_HEADER = "dapr-app-id"
TIMEOUT_HEADER = "tether-invoke-timeout"
ASYNC_HEADER = "tether-invoke-async"
KEY_HEADER = "tether-invoke-key"
#: the query parameter that marks a call async, as the header does (not passed on)
ASYNC_QUERY = "metadata.async"
#: the verbs a method can be invoked with (Dapr's, and OPTIONS)
VERBS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
#: headers meant for this sidecar, not for the target app
SIDECAR_HEADERS = frozenset({API_TOKEN_HEADER, APP_ID_HEADER, TIMEOUT_HEADER, ASYNC_HEADER,
                             KEY_HEADER})
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class InvokeApi(ServiceRoutes[InvocationService]):
    def routes(self) -> Sequence[web.RouteDef]:
        path = PREFIX + "{appId}/method/{method:.*}"
        # GET answers HEAD too (aiohttp); the proxy form takes any verb
        return [web.route(verb, path, self.invoke) for verb in VERBS]

    def middlewares(self) -> Sequence[Any]:
        """Dapr's HTTP proxy form: a request with ``dapr-app-id`` is a call of its path."""

        @web.middleware
        async def proxy(request: web.Request, handler: Handler) -> web.StreamResponse:
            target = request.headers.get(APP_ID_HEADER)
            if not target or request.path.startswith(PREFIX):
                return await handler(request)
            return await self._call(request, target, request.raw_path.lstrip("/"))

        return [proxy]

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        # the raw path keeps the method's percent-encoding; the app id is its next segment
        raw = request.raw_path[len(PREFIX):]
        _, _, method = raw.partition("/method/")
        if not method or method.startswith("?"):
            raise ApiError(400, errors.DIRECT_INVOKE, "the method to invoke is missing")
        return await self._call(request, request.match_info["appId"], method)

    async def _call(self, request: web.Request, target: str, path: str) -> web.StreamResponse:
        headers = request_headers(request)
        if TRACE_KEY in request:  # tracing: the call continues the API call's server span
            headers = with_trace(headers, trace_headers(request))
        path, is_async = _async(request, path)
        body = await request.read()  # over the body limit: 413 (the error middleware)
        if is_async:
            call_id = await self.service.invoke_async(
                target, request.method, path, headers, body, request.headers.get(KEY_HEADER) or None
            )
            return web.json_response({"id": call_id}, status=202)
        reply = await self.service.invoke(
            target, request.method, path, headers, body, call_timeout(request)
        )
        return web.Response(status=reply.status, body=reply.body,
                            headers=CIMultiDict(reply.headers))


def request_headers(request: web.Request) -> Headers:
    """The request's end-to-end headers for the app; 400 for a value that is not UTF-8."""
    pairs = end_to_end(request.headers.items(), SIDECAR_HEADERS)
    for name, value in pairs:
        try:
            value.encode()
        except UnicodeEncodeError:  # aiohttp's surrogate escape of bytes that are not UTF-8
            raise ApiError(400, errors.MALFORMED_REQUEST,
                           f"the {name} header is not UTF-8 text") from None
    return pairs


def _async(request: web.Request, path: str) -> tuple[str, bool]:
    """The method path to pass on (without ``metadata.async``) and whether the call is
    async; 400 for a flag that is neither true nor false."""
    flags = [value for name, value in request.query.items() if name == ASYNC_QUERY]
    if ASYNC_HEADER in request.headers:
        flags.append(request.headers[ASYNC_HEADER])
    words = {flag.strip().lower() for flag in flags}
    if not words <= {"true", "false", ""}:
        raise ApiError(400, errors.DIRECT_INVOKE,
                       f"{ASYNC_HEADER} / {ASYNC_QUERY} must be true or false")
    if ASYNC_QUERY in request.query:
        base, _, query = path.partition("?")
        kept = [part for part in query.split("&")
                if part.split("=", 1)[0] != ASYNC_QUERY]
        path = f"{base}?{'&'.join(kept)}" if kept else base
    return path, "true" in words


def call_timeout(request: web.Request) -> float | None:
    value = request.headers.get(TIMEOUT_HEADER)
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise ApiError(400, errors.DIRECT_INVOKE, f"{TIMEOUT_HEADER}: {exc}") from None
    if seconds <= 0:
        raise ApiError(400, errors.DIRECT_INVOKE, f"{TIMEOUT_HEADER} must be above zero")
    return seconds


def invoke_block(context: BlockContext) -> InvokeApi:
    return InvokeApi(InvocationService(context))
