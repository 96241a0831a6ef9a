"""The target side of service invocation: calls taken off the broker and made on the app.

Each sidecar of an app consumes the app's invocation topic in consumer group = app id, so
the replicas share the calls (tether.platform.invocation). A request whose caller has given
up (its deadline passed) is acknowledged without calling the app; any other is made on the
app over the lean HTTP/1.1 pool (:mod:`tether.platform.http1`), bounded by the time the
caller still waits, and the app's status, headers and body go back on the caller's reply
topic. A call is acknowledged once answered; one whose sidecar died mid-call, or whose
partition moved to another replica before it was acknowledged, is redelivered and made
again while its caller waits (the caller takes the first reply): at least once, as a
pub/sub delivery.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from tether.brokers import Broker, BrokerError, Delivery, SubscribeOptions
from tether.brokers import Subscription as BrokerSubscription
from tether.platform import errors, tracing
from tether.platform.aio import cancel_task
from tether.platform.events.ids import new_id
from tether.platform.http1 import Http1Pool
from tether.platform.invocation import InvokeReply, InvokeRequest, request_topic
from tether.platform.invocation.access import AccessControl
from tether.platform.invocation.messages import end_to_end, trace_of
from tether.workers.app_channel import API_TOKEN_HEADER, DEFAULT_HOST, MAX_CONNECTIONS

if TYPE_CHECKING:
    from tether.platform.tracing.otel import Tracer

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENCY = 100
CALLER_HEADER = "dapr-caller-app-id"
CALLEE_HEADER = "dapr-callee-app-id"
#: headers of the request the sidecar sets itself for the app
OWN_HEADERS = frozenset({CALLER_HEADER, CALLEE_HEADER, API_TOKEN_HEADER})


def app_headers(request: InvokeRequest, app_id: str, api_token: str | None) -> dict[str, str]:
    """The headers a call is made on the app with: the caller's end-to-end ones and those
    the sidecar sets (caller and callee app ids, the app API token)."""
    headers: dict[str, str] = {}
    for name, value in end_to_end(request.headers, OWN_HEADERS):
        # one line per name: a repeated request header is a comma list (RFC 9110 5.3)
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    headers[CALLER_HEADER] = request.caller
    headers[CALLEE_HEADER] = app_id
    if api_token is not None:
        headers[API_TOKEN_HEADER] = api_token
    return headers


def denial(access: AccessControl | None, request: InvokeRequest) -> str | None:
    """Dapr's message when the access control list denies the caller this method."""
    if access is None or access.allows(request.caller, request.path, request.verb):
        return None
    log.info("call %s from %r to %s /%s denied by the access control list",
             request.id, request.caller, request.verb, request.path)
    return (f"access control policy has denied access to appid: {request.caller} "
            f"operation: {request.path.lstrip('/')} verb: {request.verb}")


class InvocationWorker:
    """Makes the calls addressed to ``app_id`` on the app at ``host:app_port``."""

    def __init__(
        self,
        broker: Broker,
        app_id: str,
        app_port: int,
        *,
        host: str = DEFAULT_HOST,
        api_token: str | None = None,
        max_concurrency: int = DEFAULT_MAX_CONCURRENCY,
        drain_timeout: float = 30.0,
        access: AccessControl | None = None,
        topic: str | None = None,
        group: str | None = None,
        ordered: bool = False,
    ) -> None:
        self.app_id = app_id
        self._access = access
        #: the calls' topic and consumer group (the app's own unless given: an actor type's)
        self.topic = topic or request_topic(app_id)
        self.group = group or app_id
        #: one call per request key at a time (an actor's turns); else all at once
        self.ordered = ordered
        self._broker = broker
        self._pool = Http1Pool(host, app_port, limit=MAX_CONNECTIONS)
        self._api_token = api_token
        self._drain_timeout = drain_timeout
        self._limit = asyncio.Semaphore(max_concurrency)
        self._in_flight: set[asyncio.Task[None]] = set()
        self._source: BrokerSubscription | None = None
        self._loop_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # no call is nacked; a call redelivered (its sidecar died, or the group rebalanced
        # while it was pending) is made again while its caller still waits
        options = SubscribeOptions(gate_by_key=self.ordered)
        source = self._broker.subscribe(self.topic, self.group, options)
        await source.start()
        self._source = source
        self._loop_task = asyncio.create_task(self._consume(source), name=f"invoke:{self.topic}")

    async def stop(self) -> None:
        """Take no more calls, let those in flight finish, leave the group."""
        await cancel_task(self._loop_task)
        self._loop_task = None
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self._drain_timeout)
        source, self._source = self._source, None
        if source is not None:
            await source.close(self._drain_timeout)
        await self._pool.close()

    async def _consume(self, source: BrokerSubscription) -> None:
        iterator = aiter(source)
        while True:
            await self._limit.acquire()  # before taking a call, so a cancel loses none
            try:
                delivery = await anext(iterator)
            except StopAsyncIteration:  # the subscription closed
                self._limit.release()
                return
            except BaseException:
                self._limit.release()
                raise
            self._spawn(self._handle(delivery))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._in_flight.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._in_flight.discard(task)
        self._limit.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("invocation task failed", exc_info=task.exception())

    async def _handle(self, delivery: Delivery) -> None:
        try:
            request = InvokeRequest.from_event(delivery.event)
        except ValueError as exc:
            log.warning("unreadable invocation %s on %s, skipped: %s", delivery.event.id,
                        self.topic, exc)
        else:
            remaining = request.remaining()
            if remaining <= 0:
                log.info("call %s from %r skipped: its caller gave up %.3fs ago",
                         request.id, request.caller, -remaining)
            else:
                tracer = tracing.tracer(self.app_id)
                if tracer is None:
                    reply = self._refusal(request) or await self._call(request, remaining)
                else:
                    reply = await self._call_traced(tracer, request, remaining)
                if reply is not None:
                    await self._send(request, reply)
        try:
            await delivery.ack()
        except BrokerError as exc:
            log.warning("could not ack call %s: %s", delivery.event.id, exc)

    async def _call_traced(
        self, tracer: Tracer, request: InvokeRequest, remaining: float
    ) -> InvokeReply | None:
        """The call as a server span, a child of the caller's; the app gets its context."""
        name, attributes = self._span_of(request)
        with tracer.span(name, tracing.SERVER, trace_of(request.headers), attributes) as span:
            with tracing.sending(span.headers()):
                reply = self._refusal(request) or await self._call(request, remaining)
            if reply is None:
                span.fail("no answer before the caller's deadline")
            else:
                span.set("http.response.status_code", reply.status)
                if reply.status >= 500:
                    span.fail(f"HTTP {reply.status}")
            return reply

    def _span_of(self, request: InvokeRequest) -> tuple[str, dict[str, str]]:
        """The name and attributes of the call's server span."""
        return f"invoked {self.app_id}", {
            "rpc.system": "dapr", "rpc.method": request.path.split("?", 1)[0],
            "http.request.method": request.verb, "dapr.caller_app_id": request.caller}

    def _refusal(self, request: InvokeRequest) -> InvokeReply | None:
        """Dapr's 403 when the access control list denies the caller this method."""
        message = denial(self._access, request)
        if message is None:
            return None
        body = json.dumps(errors.error_body(errors.DIRECT_INVOKE, message)).encode()
        return InvokeReply(request.id, 403, [("Content-Type", "application/json")], body)

    async def _call(self, request: InvokeRequest, remaining: float) -> InvokeReply | None:
        """The app's answer; None when the caller's deadline passed first."""
        headers = app_headers(request, self.app_id, self._api_token)
        trace = tracing.outgoing()
        if trace is not None:  # the call's server span, in place of the caller's
            headers.update(trace)
        try:
            answer = await self._pool.request(
                request.verb, "/" + request.path.lstrip("/"), request.body, headers,
                timeout=remaining,
            )
        except TimeoutError:
            log.info("call %s to /%s: the app did not answer before the caller's deadline",
                     request.id, request.path)
            return None
        except (OSError, ValueError) as exc:  # refused, reset, or an unsendable header
            message = f"error invoking app channel: {exc}"
            body = json.dumps(errors.error_body(errors.DIRECT_INVOKE, message)).encode()
            return InvokeReply(request.id, 500, [("Content-Type", "application/json")], body)
        return InvokeReply(request.id, answer.status, end_to_end(answer.headers), answer.body)

    async def _send(self, request: InvokeRequest, reply: InvokeReply) -> None:
        try:
            await self._broker.publish(request.reply_to, reply.to_event(self.app_id, new_id()))
        except BrokerError as exc:  # the caller times out; calling the app again is worse
            log.warning("could not send the reply to call %s from %r: %s",
                        request.id, request.caller, exc)
