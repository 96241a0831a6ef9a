"""In-process service invocation: ``@app.method`` handlers answer calls taken off the app's
invocation topic, with no HTTP server (docs/sdk.md, docs/invocation.md).

The consuming side is the sidecar's own :class:`~tether.workers.invocation.InvocationWorker`
(the group membership, the deadline check, the reply, the acknowledgement, the drain); only
the step that makes the call differs: :class:`MethodWorker` calls the handler registered for
the method path and verb instead of the app over HTTP.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from tether.brokers import Broker
from tether.platform import errors
from tether.platform.invocation import InvokeReply, InvokeRequest
from tether.workers.invocation import DEFAULT_MAX_CONCURRENCY, InvocationWorker

log = logging.getLogger(__name__)

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BINARY = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class MethodRequest:
    """One call of a method: ``verb``, ``method`` (the path, decoded, without the query),
    ``query``, ``headers`` (as sent, a name may repeat), ``data`` and the caller's app id."""

    verb: str
    method: str
    query: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    data: bytes
    caller: str

    def header(self, name: str, default: str | None = None) -> str | None:
        lower = name.lower()
        return next((v for n, v in self.headers if n.lower() == lower), default)

    @property
    def content_type(self) -> str | None:
        return self.header("Content-Type")

    def text(self) -> str:
        return self.data.decode()

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass(frozen=True, slots=True)
class MethodResponse:
    """A handler's answer with a status or headers of its own; ``data`` is encoded as a
    handler's plain return value is."""

    data: Any = None
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None


#: what ``@app.method`` accepts: ``async def f(request)`` or ``def f(request)``
MethodHandler = Callable[[MethodRequest], Awaitable[Any] | Any]


def encode(value: Any) -> tuple[bytes, str | None]:
    """A return value as a body: None is empty, bytes as they are, str as UTF-8 text,
    anything else as JSON."""
    if value is None:
        return b"", None
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value), BINARY
    if isinstance(value, str):
        return value.encode(), TEXT
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(), JSON


def answer(request_id: str, value: Any) -> InvokeReply:
    """The reply carrying a handler's return value (or :class:`MethodResponse`)."""
    response = value if isinstance(value, MethodResponse) else MethodResponse(value)
    body, media = encode(response.data)
    headers = [(n, v) for n, v in response.headers.items() if n.lower() != "content-type"]
    content_type = response.content_type or response.headers.get("Content-Type") or media
    if content_type:
        headers.append(("Content-Type", content_type))
    return InvokeReply(request_id, response.status, headers, body)


def _error(request_id: str, status: int, code: str, message: str) -> InvokeReply:
    body = json.dumps(errors.error_body(code, message)).encode()
    return InvokeReply(request_id, status, [("Content-Type", JSON)], body)


@dataclass(frozen=True, slots=True)
class Method:
    handler: MethodHandler
    #: upper-case verbs; empty: any
    verbs: frozenset[str]


class Methods:
    """The methods registered on an app, by path (no leading slash)."""

    def __init__(self) -> None:
        self._methods: dict[str, Method] = {}

    def __bool__(self) -> bool:
        return bool(self._methods)

    def add(self, name: str, handler: MethodHandler, verbs: Sequence[str] | None) -> None:
        path = name.strip("/")
        if not path:
            raise ValueError("a method needs a name")
        if path in self._methods:
            raise ValueError(f"method {path!r} is already registered")
        self._methods[path] = Method(handler, frozenset(v.upper() for v in verbs or ()))

    async def call(self, request: InvokeRequest) -> InvokeReply:
        """The handler's answer: 404 for an unknown method, 405 for a verb it does not take,
        500 (logged) when it raises."""
        raw, _, query = request.path.partition("?")
        path = unquote(raw).strip("/")
        method = self._methods.get(path)
        if method is None:
            return _error(request.id, 404, errors.DIRECT_INVOKE, f"no method {path!r}")
        if method.verbs and request.verb.upper() not in method.verbs:
            return _error(request.id, 405, errors.DIRECT_INVOKE,
                          f"method {path!r} does not take {request.verb}")
        call = MethodRequest(request.verb, path, tuple(parse_qsl(query, keep_blank_values=True)),
                             tuple(request.headers), request.body, request.caller)
        try:
            return answer(request.id, await _run(method.handler, call))
        except Exception as exc:
            log.exception("method %r failed on call %s", path, request.id)
            return _error(request.id, 500, errors.DIRECT_INVOKE, f"method {path!r} raised {exc!r}")


async def _run(handler: MethodHandler, request: MethodRequest) -> Any:
    """A coroutine function awaited; any other handler run in a thread."""
    if inspect.iscoroutinefunction(handler):
        return await handler(request)
    result = await asyncio.to_thread(handler, request)
    return await result if inspect.isawaitable(result) else result


class MethodWorker(InvocationWorker):
    """The invocation worker of an in-process app: calls go to :class:`Methods`."""

    def __init__(self, broker: Broker, app_id: str, methods: Methods, *,
                 max_concurrency: int = DEFAULT_MAX_CONCURRENCY, drain_timeout: float = 30.0
                 ) -> None:
        # app_port is never dialled: _call below replaces the HTTP call
        super().__init__(broker, app_id, 0, max_concurrency=max_concurrency,
                         drain_timeout=drain_timeout)
        self._methods = methods

    async def _call(self, request: InvokeRequest, remaining: float) -> InvokeReply | None:
        """The handler's answer; None when the caller's deadline passed first."""
        try:
            async with asyncio.timeout(remaining):
                return await self._methods.call(request)
        except TimeoutError:
            log.info("call %s to %r: no answer before the caller's deadline", request.id,
                     request.path)
            return None
