"""The calling side of service invocation: a call published, its reply awaited.

:meth:`InvocationService.invoke` publishes the request on the target app's topic and waits,
until the caller's deadline, for the reply that names it on this sidecar's own reply topic
(read by one subscription, opened on the first call, in a consumer group of its own). A
call to an app that no sidecar serves fails at once where the backend can count a group's
members (memory, embedded, Redis); elsewhere (Kafka, Service Bus) it waits for its deadline.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass

from tether.brokers import Broker, BrokerError, SubscribeOptions
from tether.brokers import Subscription as BrokerSubscription
from tether.platform import errors, metrics, tracing
from tether.platform.aio import cancel_task
from tether.platform.blocks import BlockContext
from tether.platform.errors import ApiError
from tether.platform.events.ids import new_id
from tether.platform.invocation.messages import (
    Headers,
    InvokeReply,
    InvokeRequest,
    async_topic,
    reply_topic,
    request_topic,
    trace_of,
    with_trace,
)
from tether.platform.pubsub import runtime_pubsub
from tether.platform.resiliency import CircuitOpenError, Policy, PolicyTimeoutError
from tether.platform.resiliency.policy import no_policy

log = logging.getLogger(__name__)

#: how long a caller waits for a reply unless the call says otherwise (Dapr sets no
#: deadline without a resiliency policy; a minute bounds a call to an app that never answers)
DEFAULT_TIMEOUT = 60.0
#: how long an app seen with live members is taken as served without asking again
SERVED_FOR = 1.0


def target_app(target: str) -> str:
    """The app id of ``app`` or ``app.namespace`` (one broker is one namespace)."""
    return target.split(".", 1)[0]


def failed(app_id: str, reason: str, status: int = 500) -> ApiError:
    return ApiError(status, errors.DIRECT_INVOKE, f"failed to invoke, id: {app_id}, err: {reason}")


@dataclass(frozen=True, slots=True)
class Route:
    """Where a call goes: the topic its request is published on, the consumer group that
    serves it (to tell an unserved target at once), the request's partition key (one
    actor's calls one at a time), the callee named in the request, and how errors name
    the target."""

    topic: str
    group: str
    callee: str
    key: str | None = None

    @classmethod
    def app(cls, app_id: str) -> Route:
        return cls(request_topic(app_id), app_id, app_id)


def _status(reply: InvokeReply) -> int:
    return reply.status


def _permanent(exc: BaseException) -> bool:
    # the caller's own mistakes are not retried; "no such app" may be an app still starting
    return isinstance(exc, ApiError) and exc.status < 500


class InvocationService:
    """Invokes methods of other apps (or this one) through the broker."""

    def __init__(self, context: BlockContext, *, default_timeout: float = DEFAULT_TIMEOUT) -> None:
        self.app_id = context.app_id
        self.default_timeout = default_timeout
        self._registry = context.pubsub
        self.pubsub = runtime_pubsub(context.pubsub)
        self._resiliency = context.resiliency
        #: this sidecar's reply topic: one per process, never shared
        self.reply_topic = reply_topic(self.app_id, uuid.uuid4().hex[:16])
        self._pending: dict[str, asyncio.Future[InvokeReply]] = {}
        self._served: dict[str, float] = {}
        self._replies: BrokerSubscription | None = None
        self._reader: asyncio.Task[None] | None = None
        self._opening = asyncio.Lock()

    async def start(self) -> None:
        """Nothing to open yet: the reply subscription waits for the first call."""

    async def close(self) -> None:
        task, self._reader = self._reader, None
        if task is not None:
            await cancel_task(task)
        replies, self._replies = self._replies, None
        if replies is not None:
            await replies.close(1.0)
        for future in self._pending.values():
            future.cancel()

    async def invoke(
        self, target: str, verb: str, path: str, headers: Headers, body: bytes,
        timeout: float | None = None,
    ) -> InvokeReply:
        """The target app's answer to ``verb path``; ApiError (Dapr's ERR_DIRECT_INVOKE) when
        there is none: no such app (500), no answer before the deadline (504)."""
        app_id = target_app(target)
        if not app_id:
            raise failed(target, "the app id is empty", 400)
        tracer = tracing.tracer(self.app_id)
        if tracer is None:
            return await self._invoke(app_id, verb, path, headers, body, timeout)
        attributes = {"rpc.system": "dapr", "rpc.method": path.split("?", 1)[0],
                      "http.request.method": verb, "dapr.callee_app_id": app_id}
        with tracer.span(f"invoke {app_id}", tracing.CLIENT, trace_of(headers),
                         attributes) as span:
            reply = await self._invoke(app_id, verb, path, with_trace(headers, span.headers()),
                                       body, timeout)
            span.set("http.response.status_code", reply.status)
            if reply.status >= 500:
                span.fail(f"HTTP {reply.status}")
            return reply

    async def _invoke(
        self, app_id: str, verb: str, path: str, headers: Headers, body: bytes,
        timeout: float | None,
    ) -> InvokeReply:
        start = time.perf_counter()
        status = 500
        try:
            reply = await self.call(Route.app(app_id), verb, path, headers, body, timeout,
                                    self._resiliency.policy_for_app(app_id))
            status = reply.status
            return reply
        except ApiError as exc:
            status = exc.status
            raise
        finally:  # the app's answer's status, or the call's own failure's
            metrics.INVOCATION.record((self.app_id, app_id, str(status)),
                                      time.perf_counter() - start)

    async def call(
        self, route: Route, verb: str, path: str, headers: Headers, body: bytes,
        timeout: float | None = None, policy: Policy | None = None,
    ) -> InvokeReply:
        """A request on ``route`` and its reply, under ``policy`` (retries, timeout,
        breaker) within the call's deadline; ApiError (ERR_DIRECT_INVOKE) naming
        ``route.callee`` when there is no answer."""
        app_id = route.callee
        seconds = self.default_timeout if timeout is None else timeout
        deadline = time.time() + seconds
        policy = policy or no_policy(app_id)

        async def attempt() -> InvokeReply:
            return await self._attempt(route, verb, path, headers, body, deadline)

        try:
            async with asyncio.timeout(seconds):
                # the app's resiliency policy (targets.apps) retries, times out and breaks
                # each attempt; the call's own deadline bounds them all
                return await policy.call(attempt, status=_status, permanent=_permanent)
        except PolicyTimeoutError as exc:
            raise failed(app_id, str(exc), 504) from None
        except CircuitOpenError as exc:
            raise failed(app_id, str(exc)) from None
        except TimeoutError:
            raise failed(app_id, f"no answer within {seconds:g}s (the call's deadline)", 504
                         ) from None
        except BrokerError as exc:
            raise failed(app_id, f"pub/sub {self.pubsub!r}: {exc}") from exc

    async def _attempt(
        self, route: Route, verb: str, path: str, headers: Headers, body: bytes,
        deadline: float,
    ) -> InvokeReply:
        """One request published and its reply awaited (a retry is a new request)."""
        request = InvokeRequest(
            id=new_id(), caller=self.app_id, callee=route.callee, verb=verb, path=path,
            headers=headers, body=body, deadline=deadline, reply_to=self.reply_topic,
            key=route.key,
        )
        future: asyncio.Future[InvokeReply] = asyncio.get_running_loop().create_future()
        self._pending[request.id] = future
        try:
            broker = await self._broker(route.callee)
            await self._check_served(broker, route)
            await self._listen(broker)
            await broker.publish(route.topic, request.to_event())
            return await future
        finally:
            self._pending.pop(request.id, None)

    async def invoke_async(
        self, target: str, verb: str, path: str, headers: Headers, body: bytes,
        key: str | None = None,
    ) -> str:
        """Publish a durable async call to the target app; its id once the broker accepted
        it. The target's sidecar makes it at least once (retried, dead-lettered, in order
        per ``key``), whether or not it runs now. ApiError: 400 for no app id, 503 when the
        broker did not accept the call (nothing was accepted)."""
        app_id = target_app(target)
        if not app_id:
            raise failed(target, "the app id is empty", 400)
        call_id = new_id()
        tracer = tracing.tracer(self.app_id)
        if tracer is None:
            return await self._publish_async(app_id, call_id, verb, path, headers, body, key)
        attributes = {"rpc.system": "dapr", "rpc.method": path.split("?", 1)[0],
                      "http.request.method": verb, "dapr.callee_app_id": app_id,
                      "messaging.message.id": call_id}
        # a producer span: the call is made later, by the delivery its event starts
        with tracer.span(f"invoke {app_id}", tracing.PRODUCER, trace_of(headers),
                         attributes) as span:
            return await self._publish_async(app_id, call_id, verb, path,
                                             with_trace(headers, span.headers()), body, key)

    async def _publish_async(self, app_id: str, call_id: str, verb: str, path: str,
                             headers: Headers, body: bytes, key: str | None) -> str:
        request = InvokeRequest(
            id=call_id, caller=self.app_id, callee=app_id, verb=verb, path=path,
            headers=headers, body=body, deadline=0.0, reply_to="", key=key,
        )
        broker = await self._broker(app_id)
        try:
            await broker.publish(async_topic(app_id), request.to_event())
        except BrokerError as exc:
            raise failed(app_id, f"pub/sub {self.pubsub!r} did not accept the async call: "
                                 f"{exc}", 503) from exc
        return request.id

    async def _broker(self, app_id: str) -> Broker:
        if self.pubsub is None:
            raise failed(app_id, "the app has no pub/sub component to invoke through")
        return await self._registry.broker(self.pubsub)

    async def _check_served(self, broker: Broker, route: Route) -> None:
        """A call nobody serves fails now, where the backend can tell."""
        now = time.monotonic()
        if self._served.get(route.topic, 0.0) > now:
            return
        members = await broker.live_members(route.topic, route.group)
        if members == 0:
            raise failed(route.callee, f"couldn't find service: {route.callee} (no sidecar "
                                       f"takes its calls on pub/sub {self.pubsub!r})")
        self._served[route.topic] = now + SERVED_FOR

    async def _listen(self, broker: Broker) -> None:
        """Open the reply subscription once."""
        if self._reader is not None:
            return
        async with self._opening:
            if self._reader is not None:
                return
            # one partition: one reader of this private topic, so replies arriving together
            # come back in one fetch instead of waking a fetch loop per partition each
            await broker.create_topic(self.reply_topic, 1)
            options = SubscribeOptions(gate_by_key=False, max_deliveries=1,
                                       start_from="earliest")
            replies = broker.subscribe(self.reply_topic, self.reply_topic, options)
            await replies.start()
            self._replies = replies
            self._reader = asyncio.create_task(self._read(replies), name="invoke:replies")

    async def _read(self, replies: BrokerSubscription) -> None:
        async for delivery in replies:
            try:
                reply = InvokeReply.from_event(delivery.event)
            except ValueError as exc:
                log.warning("unreadable reply %s on %s: %s", delivery.event.id,
                            self.reply_topic, exc)
            else:
                future = self._pending.get(reply.request_id)
                if future is not None and not future.done():
                    future.set_result(reply)
            try:
                await delivery.ack()
            except BrokerError as exc:  # a reply read twice is ignored (its call is over)
                log.debug("could not ack reply %s: %s", delivery.event.id, exc)
