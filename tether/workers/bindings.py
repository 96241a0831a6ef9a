"""Bindings on the broker: input sources feeding their topics, their events delivered to
the app, and async output calls run with retries.

**Input.** Each input binding the app wants (Dapr's ``OPTIONS /<route>`` probe: 2xx or 405
yes, 404 no) gets a reader and a delivery worker:

- the reader runs the component's source and puts each message on ``tether.binding.<name>``
  (the app's pub/sub broker) before the source acknowledges it, so a crash at any moment
  loses nothing the source gave up. A source with no consumer group of its own
  (``exclusive``: cron, MQTT without a shared subscription) is read under a
  :class:`~tether.workers.lease.Lease`: by one replica of the app at a time. A source that
  fails is started again after a backoff;
- a :class:`~tether.workers.delivery.DeliveryWorker` in group = app id (replicas share the
  events) POSTs each one to the app as Dapr does (the raw data, the component's metadata as
  headers) through :class:`BindingChannel`, with pub/sub's contract: 2xx or ``SUCCESS``
  acks, any other status or ``RETRY`` retries with backoff (only that key waits), ``DROP``
  or retries exhausted go to the binding's dead-letter topic, one event per key at a time.

**Output.** Async calls (:meth:`~tether.platform.bindings.BindingsService.invoke_async`)
are delivered from ``tether.binding.out.<app-id>`` to :class:`OutputCallChannel`, which
runs them on the component: a refused request is dead-lettered, a failing server retried.
"""

from __future__ import annotations

import asyncio
import logging
from time import perf_counter
from typing import Protocol

from tether.brokers import Broker
from tether.platform import metrics, tracing
from tether.platform.aio import cancel_task
from tether.platform.bindings import (
    Binding,
    BindingError,
    BindingFailedError,
    BindingsService,
    InputMessage,
)
from tether.platform.bindings.messages import (
    OutputCall,
    input_dead_letter_topic,
    input_event,
    input_topic,
    lease_topic,
    output_dead_letter_topic,
    output_topic,
    read_input,
)
from tether.platform.components import Subscription
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent
from tether.platform.http1 import Http1Pool
from tether.workers.app_channel import (
    API_TOKEN_HEADER,
    DEFAULT_HOST,
    DEFAULT_TIMEOUT,
    MAX_CONNECTIONS,
    Outcome,
    outcome_of,
)
from tether.workers.delivery import DeliveryOptions, DeliveryWorker
from tether.workers.lease import Lease
from tether.workers.retry import Backoff

log = logging.getLogger(__name__)

#: Dapr posts binding data as JSON unless the component says otherwise
DEFAULT_CONTENT_TYPE = "application/json"
#: how long the OPTIONS probe keeps trying while the app finishes starting
PROBE_TIMEOUT = 30.0
#: a failing source is started again after this backoff
SOURCE_BACKOFF = Backoff(initial=1.0, maximum=30.0)


def _header_value(value: str) -> str:
    # a metadata value with a line break would split the header; send it on one line
    return value.replace("\r", " ").replace("\n", " ")


class BindingTarget(Protocol):
    """Where input events go: the app over HTTP (:class:`BindingChannel`) or in process."""

    async def probe(self, path: str) -> bool:
        """Does the app want the events routed to ``path``?"""

    async def deliver(self, path: str, event: CloudEvent) -> Outcome: ...

    async def close(self) -> None: ...


class BindingChannel:
    """POSTs an input event to the app as Dapr does: the data as the body, the component's
    metadata as headers; the answer read as a pub/sub delivery's (``outcome_of``)."""

    def __init__(self, app_port: int, *, host: str = DEFAULT_HOST,
                 api_token: str | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._pool = Http1Pool(host, app_port, limit=MAX_CONNECTIONS)
        self._api_token = api_token
        self._timeout = timeout

    async def close(self) -> None:
        await self._pool.close()

    async def probe(self, path: str, timeout: float = PROBE_TIMEOUT) -> bool:
        """Dapr's ``OPTIONS /<route>``: does the app want this binding's events? Retried
        until the app answers (it may still be starting); no answer at all is a yes."""
        deadline = asyncio.get_running_loop().time() + timeout
        pause = 0.05
        while True:
            try:
                answer = await self._pool.request("OPTIONS", path, b"", self._headers(),
                                                  timeout=self._timeout)
            except (TimeoutError, OSError) as exc:
                if asyncio.get_running_loop().time() >= deadline:
                    log.warning("the app did not answer OPTIONS %s (%r); delivering anyway",
                                path, exc)
                    return True
                await asyncio.sleep(pause)
                pause = min(pause * 2, 1.0)
                continue
            return answer.status != 404

    def _headers(self) -> dict[str, str]:
        return {API_TOKEN_HEADER: self._api_token} if self._api_token else {}

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        try:
            message = read_input(event)
        except ValueError as exc:
            log.warning("unreadable binding event %s, dead-lettered: %s", event.id, exc)
            return Outcome.DROP
        headers = {_header_value(k): _header_value(v) for k, v in message.metadata.items()}
        headers.update(self._headers())
        headers["Content-Type"] = message.content_type or DEFAULT_CONTENT_TYPE
        # the delivery span's context when tracing, else the source's (the event's)
        trace = tracing.outgoing() or event.extensions
        for name in tracing.TRACE_HEADERS:
            if value := trace.get(name):
                headers[name] = value
        try:
            answer = await self._pool.request("POST", path, message.data, headers,
                                              timeout=self._timeout)
        except ValueError as exc:  # an unsendable header: it would fail every time
            log.warning("binding event %s cannot be sent to %s, dead-lettered: %s",
                        event.id, path, exc)
            return Outcome.DROP
        except (TimeoutError, OSError) as exc:
            log.info("binding event %s to %s failed, will retry: %r", event.id, path, exc)
            return Outcome.RETRY
        outcome = outcome_of(answer.status, answer.body)
        if outcome is not Outcome.SUCCESS:
            log.info("app answered %s to binding event %s at %s: %s", answer.status, event.id,
                     path, outcome.name)
        return outcome


class InputReader:
    """Reads one input source onto its topic, under a lease when the source is exclusive."""

    def __init__(self, app_id: str, binding: Binding, broker: Broker) -> None:
        assert binding.input is not None
        self.app_id = app_id
        self.binding = binding
        self.broker = broker
        self.topic = input_topic(binding.name)
        #: messages this member put on the topic (for logs and tests)
        self.emitted = 0
        self._task: asyncio.Task[None] | None = None
        self.lease: Lease | None = None
        if binding.input.exclusive:
            topic = lease_topic(app_id, binding.name)
            self.lease = Lease(broker, topic, topic, binding.name)

    async def start(self) -> None:
        await self.broker.create_topic(self.topic)
        work = self._read if self.lease is None else self._leased
        self._task = asyncio.create_task(work(), name=f"binding-read:{self.binding.name}")

    async def stop(self) -> None:
        await cancel_task(self._task)
        self._task = None
        assert self.binding.input is not None
        try:
            await self.binding.input.close()
        except Exception:
            log.exception("closing input binding %r failed", self.binding.name)

    async def _leased(self) -> None:
        assert self.lease is not None
        await self.lease.run(self._read)

    async def _read(self) -> None:
        """Run the source; when it fails, start it again after a backoff."""
        source = self.binding.input
        assert source is not None
        failures = 0
        while True:
            try:
                await source.run(self._emit)
                log.info("input binding %r: its source stopped; starting it again",
                         self.binding.name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                failures += 1
                level = logging.WARNING if failures <= 3 else logging.DEBUG
                log.log(level, "input binding %r failed (%s: %s); starting it again",
                        self.binding.name, type(exc).__name__, exc)
                try:
                    await source.close()
                except Exception:
                    log.debug("closing the failed source of %r failed", self.binding.name,
                              exc_info=True)
            else:
                failures = 0
            await asyncio.sleep(SOURCE_BACKOFF.delay(max(failures, 1)))

    async def _emit(self, message: InputMessage) -> None:
        start = perf_counter()
        success = "false"
        try:
            event = input_event(self.app_id, self.binding.name, message)
            tracer = tracing.tracer(self.app_id)
            if tracer is None:
                await self.broker.publish(self.topic, event)
            else:  # a new trace per message; its delivery to the app is the span's child
                attributes = {"messaging.system": "dapr", "messaging.operation.type": "send",
                              "messaging.destination.name": self.topic,
                              "messaging.message.id": event.id,
                              "dapr.binding": self.binding.name,
                              "dapr.component_type": self.binding.type}
                with tracer.span(f"binding {self.binding.name} input", tracing.PRODUCER, None,
                                 attributes) as span:
                    event.extensions.update(span.headers())
                    await self.broker.publish(self.topic, event)
            success = "true"
            self.emitted += 1
        finally:
            metrics.INPUT_BINDING.record((self.app_id, self.binding.name, success),
                                         perf_counter() - start)


def _input_subscription(binding: Binding, pubsub: str) -> Subscription:
    return Subscription(
        name=f"binding-{binding.name}", pubsub_name=pubsub, topic=input_topic(binding.name),
        default_path=binding.app_route,
        dead_letter_topic=binding.dead_letter_topic or input_dead_letter_topic(binding.name),
    )


class InputBindings:
    """The app's input bindings: each wanted one's reader and delivery worker."""

    def __init__(self, service: BindingsService, broker: Broker, channel: BindingTarget,
                 options: DeliveryOptions | None = None) -> None:
        self.service = service
        self.broker = broker
        self.channel = channel
        self.options = options or DeliveryOptions()
        self.readers: dict[str, InputReader] = {}
        self.workers: dict[str, DeliveryWorker] = {}

    async def start(self) -> None:
        pubsub = self.service.pubsub_name
        assert pubsub is not None, "BindingsService.from_context checks it"
        try:
            for binding in self.service.inputs:
                if not await self.channel.probe(binding.app_route):
                    log.info("the app does not serve input binding %r (OPTIONS %s: 404); "
                             "not reading it", binding.name, binding.app_route)
                    continue
                options = self.options
                if binding.max_concurrency:
                    options = DeliveryOptions(
                        max_concurrency=binding.max_concurrency,
                        max_deliveries=options.max_deliveries, backoff=options.backoff,
                        drain_timeout=options.drain_timeout,
                    )
                # events read before any replica of the app ever ran are still delivered
                worker = DeliveryWorker(self.broker, _input_subscription(binding, pubsub),
                                        self.service.app_id, self.channel, options,
                                        start_from="earliest",
                                        inbound=self.service.inbound.get(binding.name))
                await worker.start()
                self.workers[binding.name] = worker
                reader = InputReader(self.service.app_id, binding, self.broker)
                await reader.start()
                self.readers[binding.name] = reader
                log.info("input binding %r: %s events delivered to %s%s", binding.name,
                         binding.type, binding.app_route,
                         " (one reader across replicas)" if reader.lease else "")
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Stop reading first (nothing new comes in), then let deliveries finish."""
        readers, self.readers = list(self.readers.values()), {}
        await asyncio.gather(*(reader.stop() for reader in readers))
        workers, self.workers = list(self.workers.values()), {}
        try:
            await asyncio.gather(*(worker.stop() for worker in workers))
        finally:
            await self.channel.close()


class OutputCallChannel:
    """Runs async output calls on their components (the "app" of their delivery worker)."""

    def __init__(self, service: BindingsService) -> None:
        self.service = service

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        try:
            call = OutputCall.from_event(event)
        except ValueError as exc:
            log.warning("unreadable output binding call %s, dead-lettered: %s", event.id, exc)
            return Outcome.DROP
        # the call's span: a child of this delivery's when tracing, else of the caller's
        trace = tracing.outgoing() or {
            h: v for h in tracing.TRACE_HEADERS if (v := event.extensions.get(h))}
        try:
            await self.service.call(call.binding, call.request, trace)
        except ApiError as exc:  # no such binding or operation (any more): never will be
            log.warning("async call %s to binding %r dead-lettered: %s", event.id,
                        call.binding, exc.message)
            return Outcome.DROP
        except BindingFailedError as exc:
            log.info("async call %s to binding %r failed, will retry: %s", event.id,
                     call.binding, exc)
            return Outcome.RETRY
        except BindingError as exc:  # refused or not found: the same every time
            log.warning("async call %s to binding %r dead-lettered: %s", event.id,
                        call.binding, exc)
            return Outcome.DROP
        return Outcome.SUCCESS


class OutputCalls:
    """The delivery worker of the app's async output binding calls."""

    def __init__(self, service: BindingsService, broker: Broker,
                 options: DeliveryOptions | None = None) -> None:
        pubsub = service.pubsub_name or ""
        subscription = Subscription(
            name=f"binding-out-{service.app_id}", pubsub_name=pubsub,
            topic=output_topic(service.app_id), default_path="/",
            dead_letter_topic=output_dead_letter_topic(service.app_id),
        )
        self.worker = DeliveryWorker(broker, subscription, service.app_id,
                                     OutputCallChannel(service), options,
                                     start_from="earliest")

    async def start(self) -> None:
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()
