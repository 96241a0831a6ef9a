"""What runs around every route: Dapr's error shape for every answer, the API token
(docs/security.md), the request series and the server span (docs/observability.md)."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from time import perf_counter
from typing import Any

from aiohttp import web

from tether.platform import errors, metrics, tracing
from tether.platform.errors import ApiError
from tether.sidecar.request import TRACE_KEY, incoming_trace
from tether.workers.app_channel import API_TOKEN_HEADER

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: what a caller may reach without the token, as Dapr (isRouteExcludedFromAPITokenAuth)
TOKEN_EXEMPT = frozenset({("GET", "v1.0/healthz"), ("GET", "v1.0/healthz/outbound")})


def dapr_errors(max_body_size: int) -> Any:
    """Answer ApiError, and aiohttp's own 404, 405 and 413, as Dapr-shaped JSON errors."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body(), status=exc.status)
        except web.HTTPRequestEntityTooLarge:
            message = f"the request body is larger than the limit of {max_body_size} bytes"
            return web.json_response(errors.error_body(errors.BODY_TOO_LARGE, message), status=413)
        except web.HTTPMethodNotAllowed as exc:
            allowed = ", ".join(sorted(exc.allowed_methods))
            message = f"{request.method} is not allowed on {request.path} (allowed: {allowed})"
            return web.json_response(
                errors.error_body(errors.METHOD_NOT_ALLOWED, message), status=405,
                headers={"Allow": allowed},
            )
        except web.HTTPNotFound:
            message = f"no route for {request.method} {request.path}"
            return web.json_response(errors.error_body(errors.NOT_FOUND, message), status=404)

    return middleware


def api_token_check(token: str) -> Any:
    """Refuse, with 401, every request without ``dapr-api-token: token`` but the health probes.

    Runs before routing's answers (an unknown path without the token is 401, as in Dapr).
    """
    expected = _bytes(token)

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        exempt = (request.method, request.path.strip("/")) in TOKEN_EXEMPT
        given = _bytes(request.headers.get(API_TOKEN_HEADER, ""))
        # constant time: how much of a guess matched must not show in the answer's timing
        if not hmac.compare_digest(given, expected) and not exempt:
            raise ApiError(401, errors.API_TOKEN_INVALID, "invalid api token")
        return await handler(request)

    return middleware


def _bytes(text: str) -> bytes:
    # compare_digest takes ASCII str only; a header may hold any character, surrogates too
    return text.encode("utf-8", "surrogatepass")


#: methods recorded by name; any other is "OTHER", so a caller cannot add label values
_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"})
#: the path label of a request no route matched (a 404, or an answer before routing)
UNMATCHED = "unmatched"


def request_metrics(app_id: str) -> Any:
    """Count and time every answer (dapr_http_server_request_count / _latency) by method,
    route template (``/v1.0/state/{storeName}``, never the raw path) and status."""
    record = metrics.HTTP.record

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = perf_counter()
        status = 500  # an exception aiohttp answers itself
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            resource = request.match_info.route.resource
            method = request.method if request.method in _METHODS else "OTHER"
            path = UNMATCHED if resource is None else resource.canonical
            record((app_id, method, path, str(status)), perf_counter() - start)

    return middleware


def request_tracing(app_id: str) -> Any:
    """A server span per request (only installed for an app that traces): a child of the
    caller's ``traceparent``, or a new trace. The routes continue it (trace_headers)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        tracer = tracing.tracer(app_id)
        if tracer is None:  # tracing stopped (the sidecar is closing)
            return await handler(request)
        resource = request.match_info.route.resource
        route = None if resource is None else resource.canonical
        attributes = {"http.request.method": request.method, "url.path": request.path,
                      "dapr.app_id": app_id}
        if route is not None:
            attributes["http.route"] = route
        name = request.method if route is None else f"{request.method} {route}"
        with tracer.span(name, tracing.SERVER, incoming_trace(request), attributes) as span:
            request[TRACE_KEY] = span.headers()
            try:
                response = await handler(request)
            except web.HTTPException as exc:
                span.set("http.response.status_code", exc.status)
                raise
            span.set("http.response.status_code", response.status)
            if response.status >= 500:
                span.fail(f"HTTP {response.status}")
            return response

    return middleware
