"""The delivery worker: one per subscription, from the broker to the app and back.

It consumes the subscription's topic in consumer group = app id, picks each event's path
with the compiled route table, hands it to an :class:`~.app_channel.AppChannel` and settles
it by the app's answer (docs/delivery.md has the table):

- SUCCESS: ack;
- no route matched: ack and skip, or to the ``deadLetterTopic`` if one is set (newer Dapr);
- RETRY (and failures): nack with exponential backoff; after ``max_deliveries`` the broker
  dead-letters it (the subscription's ``deadLetterTopic``, else ``<topic>.deadletter``).
  A pub/sub component with an inbound resiliency retry policy replaces both: its backoff
  and ``maxRetries + 1`` deliveries (docs/resiliency.md); its timeout bounds each call to
  the app (a timeout is a RETRY), and while its circuit breaker is open the worker holds
  the event (and its key) instead of calling the app;
- DROP: to the ``deadLetterTopic`` if the subscription has one, else ack with a warning;
- expired (``expiration`` in the past, from publish's ``ttlInSeconds``): never sent to the
  app; dead-lettered or dropped like DROP;
- a match expression that fails on the event: dead-lettered if a topic is set, else retried
  (Dapr fails the delivery).

Deliveries run concurrently (the broker gives one unsettled delivery per key, so per-key
order holds), at most ``max_concurrency`` tasks at a time. With ``bulkSubscribe.enabled``
they are collected into batches (maxMessagesCount, maxAwaitDurationMs) and POSTed per path;
a batch is one task (one permit), so several bulk requests are in flight at once, and a
batch is sent early once the broker has nothing more it could hand out before the worker
settles something (the rest wait behind keys the worker holds).
:meth:`DeliveryWorker.stop` stops taking deliveries, waits for those in flight and closes
the subscription.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from time import perf_counter
from typing import TYPE_CHECKING, Any, cast

from tether.brokers import Broker, BrokerError, Delivery, SubscribeOptions
from tether.brokers import Subscription as BrokerSubscription
from tether.brokers.base import DEFAULT_MAX_DELIVERIES, StartFrom
from tether.platform import metrics, tracing
from tether.platform.components import Subscription
from tether.platform.components.metadata import is_truthy
from tether.platform.events import CloudEvent, InvalidCloudEventError, parse_time, utc_now
from tether.platform.events.envelope import DAPR_EVENT_TYPE, EXPIRATION
from tether.platform.events.event import BINARY_CONTENT_TYPE
from tether.platform.events.json_format import to_json
from tether.platform.logs import log_context, trace_fields
from tether.platform.pubsub.routing import RouteEvaluationError, RouteTable
from tether.platform.resiliency import CircuitOpenError, Policy
from tether.platform.resiliency.retry import FOREVER
from tether.workers.app_channel import AppChannel, BulkAppChannel, Outcome
from tether.workers.retry import Backoff

if TYPE_CHECKING:
    from tether.platform.tracing.otel import Tracer

log = logging.getLogger(__name__)

DEFAULT_MAX_CONCURRENCY = 100
#: how often a filling batch rechecks whether the broker still has anything to hand out
STALL_POLL = 0.005
#: Dapr's source for a raw payload wrapped into a CloudEvent (pkg/pubsub FromRawPayload)
RAW_SOURCE = "Dapr"
#: deliveries of an event under a retry policy with maxRetries -1 (no limit)
UNLIMITED_DELIVERIES = 2**31 - 1
#: how often a delivery held by a half-open breaker (its allowance in use) asks again
BREAKER_POLL = 0.05


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_deliveries: int = DEFAULT_MAX_DELIVERIES
    backoff: Backoff = field(default_factory=Backoff)
    #: how long stop() lets in-flight deliveries finish before the subscription gives up
    drain_timeout: float = 30.0

    def __post_init__(self) -> None:
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency must be at least 1")


def is_raw(subscription: Subscription) -> bool:
    return is_truthy(subscription.metadata.get("rawPayload"))


def raw_envelope(event: CloudEvent, topic: str, pubsub_name: str) -> CloudEvent:
    """What a rawPayload subscriber gets, as in Dapr: the message bytes base64-encoded in a
    new envelope. A raw-published event's bytes are its data; any other event's bytes are
    its structured JSON (what the broker message is in Dapr). The event id is kept (Dapr
    makes a random one) so that an app can deduplicate redeliveries."""
    raw = event.data if isinstance(event.data, bytes) else None
    if raw is None or event.datacontenttype != BINARY_CONTENT_TYPE:
        raw = to_json(event)
    extensions = {"topic": topic, "pubsubname": pubsub_name}
    extensions.update({k: v for k, v in event.extensions.items() if k.startswith("trace")})
    return CloudEvent(
        id=event.id,
        source=RAW_SOURCE,
        type=DAPR_EVENT_TYPE,
        datacontenttype=BINARY_CONTENT_TYPE,
        data=raw,
        extensions=extensions,
    )


def expired(event: CloudEvent, now: datetime | None = None) -> bool:
    """True when the event's ``expiration`` extension lies in the past (unreadable: no)."""
    value = event.extensions.get(EXPIRATION)
    if not value:
        return False
    try:
        deadline = parse_time(value)
    except InvalidCloudEventError:
        log.warning("event %s has an unreadable expiration %r; delivering it", event.id, value)
        return False
    return deadline <= (now or utc_now())


class DeliveryWorker:
    """Delivers one subscription's events to the app through ``channel``."""

    def __init__(
        self,
        broker: Broker,
        subscription: Subscription,
        app_id: str,
        channel: AppChannel,
        options: DeliveryOptions | None = None,
        *,
        group: str | None = None,
        start_from: StartFrom | None = None,
        inbound: Policy | None = None,
    ) -> None:
        self.subscription = subscription
        self.app_id = app_id
        self.group = group or app_id
        #: where the group starts if it is new (the component's initialOffset)
        self.start_from = start_from
        self.options = options or DeliveryOptions()
        #: the pub/sub component's inbound resiliency policy (None or empty: the defaults)
        self.inbound = inbound if inbound is not None and not inbound.empty else None
        # compiled now: a bad match expression stops startup, not the first delivery
        self.routes = RouteTable.compile(subscription.rules, subscription.default_path)
        self._broker = broker
        self._channel = channel
        self._raw = is_raw(subscription)
        # one permit per task: a single delivery, or a batch (one bulk request per path)
        self._limit = asyncio.Semaphore(self.options.max_concurrency)
        # each task and the deliveries it holds
        self._in_flight: dict[asyncio.Task[None], list[Delivery]] = {}
        self._source: BrokerSubscription | None = None
        self._loop_task: asyncio.Task[None] | None = None
        # this subscription's series (docs/observability.md), their children looked up once
        labels = (app_id, subscription.pubsub_name, subscription.topic)
        self._ingress = {
            outcome: (*labels, outcome.value.lower()) for outcome in Outcome
        }
        self._in_flight_gauge = metrics.child(metrics.DELIVERIES_IN_FLIGHT, *labels)
        self._retries = metrics.child(metrics.DELIVERY_RETRIES, *labels)
        self._dead_lettered = metrics.child(metrics.DEAD_LETTERED, *labels)

    @property
    def topic(self) -> str:
        return self.subscription.topic

    @property
    def max_deliveries(self) -> int:
        """Deliveries of an event before the broker dead-letters it."""
        retry = self.inbound.retry if self.inbound is not None else None
        if retry is None:
            return self.options.max_deliveries
        return UNLIMITED_DELIVERIES if retry.max_retries == FOREVER else retry.max_retries + 1

    def retry_delay(self, delivery_count: int) -> float:
        """Seconds before redelivering after delivery number ``delivery_count`` failed."""
        policy = self.inbound
        if policy is None or policy.retry is None:
            return self.options.backoff.delay(delivery_count)
        return policy.retry.delay(delivery_count, policy.clock.random)

    @property
    def in_flight(self) -> int:
        """Events handed to the app (or about to be) and not finished yet."""
        return sum(len(held) for held in self._in_flight.values())

    async def start(self) -> None:
        if self._source is not None:
            return
        options = SubscribeOptions(
            max_deliveries=self.max_deliveries,
            dead_letter_topic=self.subscription.dead_letter_topic,
            start_from=self.start_from,
        )
        source = self._broker.subscribe(self.topic, self.group, options)
        await source.start()
        self._source = source
        self._loop_task = asyncio.create_task(self._consume(source), name=f"deliver:{self.topic}")

    async def stop(self) -> None:
        """Take no more deliveries, let those in flight finish, close the subscription."""
        if self._loop_task is not None:
            # the loop only waits on the semaphore or for the next delivery: cancelling it
            # there never loses a delivery it already took
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
            self._loop_task = None
        if self._in_flight:
            await asyncio.wait(set(self._in_flight), timeout=self.options.drain_timeout)
        if self._source is not None:
            source, self._source = self._source, None
            await source.close(self.options.drain_timeout)

    async def __aenter__(self) -> DeliveryWorker:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- the loop ---------------------------------------------------------------------------
    async def _consume(self, source: BrokerSubscription) -> None:
        iterator = aiter(source)
        bulk = self._bulk_channel()
        while True:
            await self._limit.acquire()  # before taking a delivery, so a cancel loses none
            try:
                delivery = await anext(iterator)
            except StopAsyncIteration:
                self._limit.release()
                return
            except BaseException:
                self._limit.release()
                raise
            if bulk is None:
                self._spawn(self._handle(delivery), [delivery])
                continue
            batch = [delivery]
            try:
                await self._fill(batch, source, iterator)
            finally:  # on a cancel too: what was taken is delivered, not left unsettled
                self._spawn(self._handle_batch(batch, bulk), batch)

    async def _fill(
        self, batch: list[Delivery], source: BrokerSubscription, iterator: AsyncIterator[Delivery]
    ) -> None:
        """Add deliveries to ``batch`` until maxMessagesCount, maxAwaitDurationMs, or until
        the broker has nothing ready and holds records only this worker can unblock."""
        settings = self.subscription.bulk
        loop = asyncio.get_running_loop()
        deadline = loop.time() + settings.max_await_duration_ms / 1000
        while len(batch) < settings.max_messages_count:
            taking = asyncio.ensure_future(anext(iterator))
            try:
                await asyncio.sleep(0)  # one turn: a delivery that is ready is taken at once
                while not taking.done():
                    remaining = deadline - loop.time()
                    if remaining <= 0 or self._stalled(source, batch):
                        break
                    await asyncio.wait({taking}, timeout=min(remaining, STALL_POLL))
            except BaseException:  # cancelled (stop): keep a delivery already taken
                self._take_or_cancel(taking, batch)
                raise
            if not self._take_or_cancel(taking, batch):
                return

    @staticmethod
    def _take_or_cancel(taking: asyncio.Future[Delivery], batch: list[Delivery]) -> bool:
        """Append the delivery ``taking`` got; if it has none (yet), cancel it. Cancelling
        is safe: the subscription hands a record out in the same step that completes it."""
        if not taking.done():
            taking.cancel()
            return False
        if taking.cancelled() or taking.exception() is not None:
            return False  # StopAsyncIteration: closing; the outer loop sees it next
        batch.append(taking.result())
        return True

    def _stalled(self, source: BrokerSubscription, batch: list[Delivery]) -> bool:
        """Nothing is ready, yet the subscription holds records this worker does not: they
        wait behind a key this worker holds unsettled (or a retry's backoff), so they cannot
        join this batch. Waiting for them until maxAwaitDurationMs would only stall."""
        held = sum(1 for d in batch if not d.settled)
        for deliveries in self._in_flight.values():
            held += sum(1 for d in deliveries if not d.settled)
        return source.in_flight > held

    def _bulk_channel(self) -> BulkAppChannel | None:
        if not self.subscription.bulk.enabled:
            return None
        if not hasattr(self._channel, "deliver_bulk"):
            log.warning("%s: the app channel cannot deliver in bulk; one by one", self.topic)
            return None
        return cast(BulkAppChannel, self._channel)

    def _spawn(self, work: Coroutine[Any, Any, None], deliveries: list[Delivery]) -> None:
        task = asyncio.create_task(work)
        self._in_flight[task] = deliveries
        self._in_flight_gauge.inc(len(deliveries))
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        held = self._in_flight.pop(task, None)
        if held is not None:
            self._in_flight_gauge.dec(len(held))
            self._limit.release()
        if not task.cancelled() and task.exception() is not None:
            log.error("delivery task failed", exc_info=task.exception())

    # --- settling ---------------------------------------------------------------------------
    async def _handle(self, delivery: Delivery) -> None:
        event = delivery.event
        # every line logged while this event is handled names it (docs/observability.md)
        with log_context(app_id=self.app_id, component=self.subscription.pubsub_name,
                         topic=self.topic, event_id=event.id, **trace_fields(event.traceparent)):
            try:
                routed = await self._prepare(delivery)
                if routed is not None:
                    path, event = routed
                    tracer = tracing.tracer(self.app_id)
                    if tracer is None:
                        await self._deliver(delivery, path, event)
                    else:
                        await self._deliver_traced(tracer, delivery, path, event)
            except BrokerError as exc:  # not settled: the broker redelivers it later
                log.warning("could not settle %r: %s", delivery, exc)

    async def _deliver(self, delivery: Delivery, path: str, event: CloudEvent) -> Outcome:
        start = perf_counter()
        [outcome] = await self._to_app(
            lambda: self._deliver_one(path, event), 1, f"event {event.id}")
        metrics.INGRESS.record(self._ingress[outcome], perf_counter() - start)
        log.debug("delivered to /%s: %s", path.lstrip("/"), outcome.value)
        await self._apply(delivery, path, outcome)
        return outcome

    async def _deliver_traced(
        self, tracer: Tracer, delivery: Delivery, path: str, event: CloudEvent
    ) -> None:
        """The delivery as a span, a child of the publisher's (the event's traceparent);
        the app gets this span's traceparent, the event keeps the publisher's."""
        parent = {h: v for h in tracing.TRACE_HEADERS if (v := event.extensions.get(h))}
        attributes: dict[str, str | int] = {
            "messaging.system": "dapr", "messaging.operation.type": "process",
            "messaging.destination.name": self.topic, "messaging.message.id": event.id,
            "messaging.consumer.group.name": self.group,
            "dapr.pubsub": self.subscription.pubsub_name, "dapr.route": path,
            "messaging.delivery.count": delivery.delivery_count,
        }
        with tracer.span(f"process {self.topic}", tracing.CONSUMER, parent, attributes) as span:
            with tracing.sending(span.headers()):
                outcome = await self._deliver(delivery, path, event)
            span.set("dapr.outcome", outcome.value)
            if outcome is not Outcome.SUCCESS:
                span.fail(f"the app answered {outcome.value}")

    async def _handle_batch(self, batch: list[Delivery], channel: BulkAppChannel) -> None:
        with log_context(app_id=self.app_id, component=self.subscription.pubsub_name,
                         topic=self.topic):
            await self._handle_bulk(batch, channel)

    async def _handle_bulk(self, batch: list[Delivery], channel: BulkAppChannel) -> None:
        by_path: dict[str, list[tuple[Delivery, CloudEvent]]] = {}
        for delivery in batch:
            try:
                routed = await self._prepare(delivery)
            except BrokerError as exc:
                log.warning("could not settle %r: %s", delivery, exc)
                continue
            if routed is not None:
                by_path.setdefault(routed[0], []).append((delivery, routed[1]))
        for path, items in by_path.items():
            events = [event for _, event in items]

            async def send(path: str = path, events: list[CloudEvent] = events) -> list[Outcome]:
                return await channel.deliver_bulk(
                    path, events, topic=self.topic, pubsub_name=self.subscription.pubsub_name
                )

            start = perf_counter()
            outcomes = await self._to_app(send, len(items), f"a bulk of {len(items)} events")
            elapsed = perf_counter() - start  # each event of the bulk took the whole call
            for outcome in outcomes:
                metrics.INGRESS.record(self._ingress[outcome], elapsed)
            for (delivery, _), outcome in zip(items, outcomes, strict=True):
                try:
                    await self._apply(delivery, path, outcome)
                except BrokerError as exc:
                    log.warning("could not settle %r: %s", delivery, exc)

    async def _deliver_one(self, path: str, event: CloudEvent) -> list[Outcome]:
        return [await self._channel.deliver(path, event)]

    async def _to_app(
        self, send: Callable[[], Awaitable[list[Outcome]]], count: int, what: str
    ) -> list[Outcome]:
        """One call to the app, under the inbound policy's breaker and timeout; a failed
        call (or a timeout) is RETRY for every event it carried."""
        policy = self.inbound
        breaker = policy.breaker if policy is not None else None
        generation = await self._admit() if breaker is not None else 0
        try:
            if policy is not None and policy.timeout is not None:
                async with asyncio.timeout(policy.timeout):
                    outcomes = await send()
            else:
                outcomes = await send()
        except TimeoutError:
            log.warning("the app did not answer %s within the resiliency timeout; retrying",
                        what)
            outcomes = [Outcome.RETRY] * count
        except Exception:
            log.exception("app channel failed on %s; retrying", what)
            outcomes = [Outcome.RETRY] * count
        if breaker is not None:
            breaker.after(generation, Outcome.RETRY not in outcomes)
        return outcomes

    async def _admit(self) -> int:
        """Wait while the inbound breaker refuses calls: the delivery (and its key) is
        held, not nacked, so an open breaker costs no delivery attempts."""
        assert self.inbound is not None and self.inbound.breaker is not None
        breaker = self.inbound.breaker
        while True:
            try:
                return breaker.before()
            except CircuitOpenError:
                await asyncio.sleep(max(breaker.open_for(), BREAKER_POLL))

    async def _prepare(self, delivery: Delivery) -> tuple[str, CloudEvent] | None:
        """The path and event to send to the app; None when settled without the app
        (expired, no route, failed match expression)."""
        event = delivery.event
        if expired(event):
            await self._drop(delivery, f"expired at {event.extensions[EXPIRATION]}")
            return None
        if self._raw:
            event = raw_envelope(event, self.topic, self.subscription.pubsub_name)
        try:
            path = self.routes.path_for(event)
        except RouteEvaluationError as exc:
            if self.subscription.dead_letter_topic:
                await self._dead_letter(delivery, str(exc))
            else:
                log.warning("%s; retrying event %s", exc, event.id)
                await self._retry(delivery)
            return None
        if path is None:
            if self.subscription.dead_letter_topic:  # as newer Dapr does
                await self._dead_letter(delivery, "no route matched the event")
            else:
                log.debug("no route matched event %s on %s; acked", event.id, self.topic)
                await delivery.ack()
            return None
        return path, event

    async def _apply(self, delivery: Delivery, path: str, outcome: Outcome) -> None:
        if outcome is Outcome.SUCCESS:
            await delivery.ack()
        elif outcome is Outcome.DROP:
            await self._drop(delivery, f"the app dropped it at /{path.lstrip('/')}")
        else:
            await self._retry(delivery)

    async def _retry(self, delivery: Delivery) -> None:
        # the broker dead-letters a nacked event that has had all its deliveries
        last = delivery.delivery_count >= self.max_deliveries
        await delivery.nack(self.retry_delay(delivery.delivery_count))
        (self._dead_lettered if last else self._retries).inc()

    async def _dead_letter(self, delivery: Delivery, reason: str) -> None:
        await delivery.dead_letter(reason)
        self._dead_lettered.inc()

    async def _drop(self, delivery: Delivery, reason: str) -> None:
        if self.subscription.dead_letter_topic:
            await self._dead_letter(delivery, reason)
            return
        log.warning(
            "dropping event %s from %s (%s); no deadLetterTopic is set",
            delivery.event.id, self.topic, reason,
        )
        await delivery.ack()
