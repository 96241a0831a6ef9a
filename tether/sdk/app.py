"""``tether.App``: subscribe handlers and publish events in-process, no sidecar.

Handlers registered with :meth:`App.subscribe` become one :class:`Subscription` per
(pubsub, topic), their ``match`` expressions ordered rules (first registered first) and a
handler without ``match`` the default route. :meth:`App.run` starts one
:class:`~tether.workers.delivery.DeliveryWorker` per subscription, in consumer group = app id,
delivering through :class:`~.channel.InProcessChannel`. Handlers registered with
:meth:`App.method` answer service invocations (``tether.Client.invoke_method``, a sidecar's
``/v1.0/invoke``) from the app's invocation topic (:mod:`.methods`). Handlers registered
with :meth:`App.binding` take input binding events, and :meth:`App.invoke_binding` calls
output bindings, both in process (:mod:`.bindings`).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from tether.brokers import Broker, open_broker
from tether.brokers.base import StartFrom
from tether.platform import tracing
from tether.platform.actors import ActorService
from tether.platform.bindings import BindingRequest, BindingResponse, BindingsService
from tether.platform.blocks import BlockContext
from tether.platform.components import Component, RouteRule, Subscription, load_resources
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent
from tether.platform.events.envelope import envelope, metadata_extensions
from tether.platform.events.ids import new_id
from tether.platform.events.json_format import event_from_attributes
from tether.platform.pubsub import PubSubRegistry, runtime_pubsub
from tether.platform.pubsub.delivery_time import due_from
from tether.platform.pubsub.routing import ValueExpression
from tether.platform.pubsub.scheduled import publish_at
from tether.platform.secrets import resolve_app_secrets
from tether.sdk.actors import ActorFactory, InProcessActors
from tether.sdk.bindings import BindingHandler, InProcessBindingChannel
from tether.sdk.channel import Handler, InProcessChannel
from tether.sdk.methods import MethodHandler, Methods, MethodWorker
from tether.workers.actor_events import ActorEventChannel
from tether.workers.actors import ActorConfig, ActorHost
from tether.workers.bindings import InputBindings, OutputCalls
from tether.workers.delivery import DeliveryOptions, DeliveryWorker
from tether.workers.scheduler import Schedulers

H = TypeVar("H", bound=Handler)
M = TypeVar("M", bound=MethodHandler)
BH = TypeVar("BH", bound=BindingHandler)
AT = TypeVar("AT", bound=ActorFactory)

DEFAULT_PUBSUB = "pubsub"


@dataclass(slots=True)
class _Topic:
    """What the decorators registered for one (pubsub, topic)."""

    pubsub: str
    topic: str
    rules: list[RouteRule] = field(default_factory=list)
    default_path: str | None = None
    dead_letter_topic: str | None = None
    max_concurrency: int | None = None

    def subscription(self) -> Subscription:
        return Subscription(
            name=f"{self.pubsub}-{self.topic}",
            pubsub_name=self.pubsub,
            topic=self.topic,
            rules=tuple(self.rules),
            default_path=self.default_path,
            dead_letter_topic=self.dead_letter_topic,
        )


class _Brokers:
    """One broker URL for every pubsub name, or the components of a resources folder."""

    def __init__(self, app_id: str, url: str | None, registry: PubSubRegistry | None,
                 components: Sequence[Component] = ()) -> None:
        self._app_id = app_id
        #: the app's components (none with a broker URL), their secrets resolved
        self.components = tuple(components)
        self._url = url
        self._broker: Broker | None = None
        self._lock = asyncio.Lock()
        self._registry = registry

    @classmethod
    async def open(cls, app_id: str, url: str | None, resources: str | Path | None) -> _Brokers:
        """Without a URL, the pub/sub components of ``resources``, their secretKeyRef values
        resolved first from the app's secret stores (as the sidecar does)."""
        if url is not None:
            return cls(app_id, url, None)
        loaded = load_resources(resources, app_id)
        components = await resolve_app_secrets(loaded.components_for(app_id))
        return cls(app_id, url, PubSubRegistry(components), components)

    def names(self) -> tuple[str, ...]:
        """Pub/sub names with a broker of their own (a broker URL serves every name)."""
        return self._registry.names if self._registry is not None else (DEFAULT_PUBSUB,)

    def invocation_pubsub(self) -> str:
        """The pub/sub the app takes calls on: the one a sidecar would use
        (``TETHER_INVOKE_PUBSUB``, else the first component)."""
        if self._registry is None:
            return DEFAULT_PUBSUB
        named = runtime_pubsub(self._registry)
        if named is None:
            raise ValueError("@app.method needs a pub/sub component to take calls on")
        return named

    def context(self, what: str) -> BlockContext:
        """What a block is built from; ``what`` needs the app's components."""
        if self._registry is None:
            raise ValueError(f"{what} need the app's components: App(resources_path=...) "
                             "instead of a broker URL")
        return BlockContext(self._app_id, self.components, self._registry)

    def bindings(self) -> BindingsService:
        """The app's binding components as a service (not started)."""
        return BindingsService.from_context(self.context("bindings"))

    def has_bindings(self) -> bool:
        return any(c.block == "bindings" for c in self.components)

    def group(self, pubsub: str) -> str:
        spec = self._registry.spec(pubsub) if self._registry is not None else None
        return (spec.consumer_group if spec is not None else None) or self._app_id

    def start_from(self, pubsub: str) -> StartFrom | None:
        """Where a new group starts (the component's initialOffset); None: the default."""
        spec = self._registry.spec(pubsub) if self._registry is not None else None
        return spec.start_from if spec is not None else None

    async def get(self, pubsub: str) -> Broker:
        if self._registry is not None:
            try:
                return await self._registry.broker(pubsub)
            except KeyError:
                raise KeyError(f"no pub/sub component named {pubsub!r}") from None
        async with self._lock:
            if self._broker is None:
                broker = open_broker(self._url)
                await broker.connect()
                self._broker = broker
            return self._broker

    async def close(self) -> None:
        if self._registry is not None:
            await self._registry.close()
        elif self._broker is not None:
            broker, self._broker = self._broker, None
            await broker.close()


class App:
    """An application: its handlers, its publisher and the workers that feed it."""

    def __init__(
        self,
        app_id: str,
        *,
        broker: str | None = None,
        resources_path: str | Path | None = None,
        options: DeliveryOptions | None = None,
        scheduler: bool = True,
    ) -> None:
        if broker is not None and resources_path is not None:
            raise ValueError("give a broker URL or a resources path, not both")
        self.app_id = app_id
        #: run the delayed-publish scheduler for the app's components while started
        self.scheduler = scheduler
        self._schedulers: Schedulers | None = None
        self.options = options or DeliveryOptions()
        self._broker_url = broker
        self._resources_path = resources_path
        self._topics: dict[tuple[str, str], _Topic] = {}
        self._handlers: dict[str, Handler] = {}
        self._brokers: _Brokers | None = None
        self._brokers_lock = asyncio.Lock()  # concurrent first calls build one _Brokers
        self._workers: list[DeliveryWorker] = []
        self._methods = Methods()
        self._method_worker: MethodWorker | None = None
        self._binding_handlers: dict[str, BindingHandler] = {}
        self._bindings: BindingsService | None = None
        self._bindings_lock = asyncio.Lock()
        self._binding_workers: list[InputBindings | OutputCalls] = []
        self._actor_types: dict[str, ActorFactory] = {}
        self._actors: ActorService | None = None
        self._actors_lock = asyncio.Lock()
        self._actor_host: ActorHost | None = None
        #: subscriptions delivered to actors: (subscription, actor type, id expression)
        self._actor_routes: list[tuple[Subscription, str, ValueExpression]] = []
        #: whether start turned tracing on (the OTEL_* variables), so stop turns it off
        self._traces = False

    def configure(
        self, *, broker: str | None = None, resources_path: str | Path | None = None
    ) -> None:
        """Point a stopped app at another broker or resources folder (``tether worker``)."""
        if self._brokers is not None:
            raise RuntimeError("configure() needs a stopped app")
        if broker is not None and resources_path is not None:
            raise ValueError("give a broker URL or a resources path, not both")
        if broker is not None or resources_path is not None:
            self._broker_url, self._resources_path = broker, resources_path

    # --- registration ------------------------------------------------------------------------
    def subscribe(
        self,
        *,
        topic: str,
        pubsub: str = DEFAULT_PUBSUB,
        match: str | None = None,
        route: str | None = None,
        dead_letter_topic: str | None = None,
        max_concurrency: int | None = None,
    ) -> Callable[[H], H]:
        """Register the decorated function for events of ``topic``; with ``match`` (a CEL
        expression) only for the events it selects, rules tried in registration order."""

        def register(handler: H) -> H:
            entry = self._topics.setdefault((pubsub, topic), _Topic(pubsub, topic))
            path = route or f"{pubsub}/{topic}/{len(self._handlers)}/{_name(handler)}"
            if path in self._handlers:
                raise ValueError(f"route {path!r} is already registered")
            if match is None:
                if entry.default_path is not None:
                    raise ValueError(f"topic {topic!r} on {pubsub!r} already has a default handler")
                entry.default_path = path
            else:
                entry.rules.append(RouteRule(match=match, path=path))
            _merge(entry, "dead_letter_topic", dead_letter_topic)
            _merge(entry, "max_concurrency", max_concurrency)
            self._handlers[path] = handler
            return handler

        return register

    def method(self, name: str, *, methods: Sequence[str] | None = None
               ) -> Callable[[M], M]:
        """Register the decorated function to answer invocations of ``name`` (a path such
        as ``orders`` or ``v1/orders``) on this app, for the HTTP verbs ``methods`` (default:
        any). It gets a :class:`~tether.sdk.methods.MethodRequest`; what it returns is the
        answer (bytes, str, None, a JSON value, or a
        :class:`~tether.sdk.methods.MethodResponse` with a status and headers)."""

        def register(handler: M) -> M:
            self._methods.add(name, handler, methods)
            return handler

        return register

    def binding(self, name: str) -> Callable[[BH], BH]:
        """Register the decorated function for the events of input binding ``name`` (a
        component of the app's resources); it gets a :class:`BindingEvent`."""

        def register(handler: BH) -> BH:
            if name in self._binding_handlers:
                raise ValueError(f"input binding {name!r} already has a handler")
            self._binding_handlers[name] = handler
            return handler

        return register

    def actor(self, actor_type: str) -> Callable[[AT], AT]:
        """Host the decorated :class:`~tether.sdk.actors.Actor` subclass as ``actor_type``
        in this process (docs/actors.md): its calls come off the type's topic here."""

        def register(cls: AT) -> AT:
            if actor_type in self._actor_types:
                raise ValueError(f"actor type {actor_type!r} is already registered")
            self._actor_types[actor_type] = cls
            return cls

        return register

    def route_to_actor(
        self, *, topic: str, actor_type: str, actor_id: str, method: str,
        pubsub: str = DEFAULT_PUBSUB, dead_letter_topic: str | None = None,
    ) -> None:
        """Deliver ``topic``'s events to actors (docs/actors.md, "Pub/sub delivered to
        actors"): each event is a turn of ``actor_type``'s actor whose id the CEL
        expression ``actor_id`` (e.g. ``event.data.userId``) gives, calling ``method``
        with the event; the subscription's retries and dead letters apply."""
        expression = ValueExpression(actor_id)  # a bad expression fails here, not later
        subscription = Subscription(
            name=f"{topic}-to-{actor_type}", pubsub_name=pubsub, topic=topic,
            default_path=method, dead_letter_topic=dead_letter_topic,
        )
        self._actor_routes.append((subscription, actor_type, expression))

    async def invoke_actor(self, actor_type: str, actor_id: str, method: str,
                           data: Any = None, timeout: float | None = None) -> Any:
        """Call ``method`` of an actor wherever it is hosted; its JSON answer. ApiError
        (Dapr's status and code) when the call fails or the method answers an error."""
        service = await self._actor_service()
        body = b"" if data is None else json.dumps(data).encode()
        reply = await service.invoke(actor_type, actor_id, method, body,
                                     [("Content-Type", "application/json")], timeout)
        value = json.loads(reply.body) if reply.body.strip() else None
        if reply.status >= 300:
            message = value.get("message") if isinstance(value, dict) else None
            code = value.get("errorCode") if isinstance(value, dict) else None
            raise ApiError(reply.status, str(code or "ERR_ACTOR_INVOKE_METHOD"),
                           str(message or reply.body[:200]))
        return value

    async def _actor_service(self) -> ActorService:
        async with self._actors_lock:
            if self._actors is None:
                service = ActorService((await self._source()).context("actors"))
                await service.start()
                self._actors = service
            return self._actors

    async def _start_actors(self) -> None:
        service = await self._actor_service()
        if service.pubsub is None:
            raise ValueError("hosting actors needs a pub/sub component")
        broker = await (await self._source()).get(service.pubsub)
        host = ActorHost(service, broker, 0, ActorConfig(entities=tuple(self._actor_types)),
                         transport=InProcessActors(service, dict(self._actor_types)))
        await host.start()
        self._actor_host = host

    async def invoke_binding(
        self, name: str, operation: str, data: bytes | str = b"",
        metadata: Mapping[str, str] | None = None,
    ) -> BindingResponse:
        """Run ``operation`` on output binding ``name`` in this process; ApiError (Dapr's
        status and ``ERR_INVOKE_OUTPUT_BINDING``) when it fails."""
        service = await self._binding_service()
        payload = data.encode() if isinstance(data, str) else bytes(data)
        return await service.invoke(name, BindingRequest(operation, payload, dict(metadata or {})))

    async def _binding_service(self) -> BindingsService:
        async with self._bindings_lock:
            if self._bindings is None:
                service = (await self._source()).bindings()
                await service.start()
                self._bindings = service
            return self._bindings

    async def _start_bindings(self) -> None:
        """The input bindings with a handler, and the async output calls."""
        service = await self._binding_service()
        routes: dict[str, tuple[str, BindingHandler]] = {}
        for name, handler in self._binding_handlers.items():
            binding = service.bindings.get(name)
            if binding is None or binding.input is None:
                raise ValueError(f"@app.binding({name!r}): the app has no input binding "
                                 f"component named {name!r}")
            routes[binding.app_route] = (name, handler)
        if service.pubsub_name is None:
            return
        broker = await (await self._source()).get(service.pubsub_name)
        if service.outputs:
            calls = OutputCalls(service, broker, self.options)
            await calls.start()
            self._binding_workers.append(calls)
        if routes:
            inputs = InputBindings(service, broker, InProcessBindingChannel(routes),
                                   self.options)
            await inputs.start()
            self._binding_workers.append(inputs)

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        return tuple(t.subscription() for t in self._topics.values())

    # --- publishing --------------------------------------------------------------------------
    async def publish(
        self,
        pubsub: str,
        topic: str,
        data: Any,
        *,
        content_type: str | None = None,
        partition_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
        deliver_after: timedelta | float | None = None,
        deliver_at: datetime | None = None,
    ) -> CloudEvent:
        """Publish ``data`` wrapped in a CloudEvent as the sidecar does; returns the event.

        ``deliver_after`` (a timedelta or seconds) or ``deliver_at`` (an aware datetime)
        delays delivery durably (docs/sdk.md); a time already past publishes at once.
        A ``metadata["ttlInSeconds"]`` that is not a whole number >= 0 raises ValueError
        (the sidecar answers 400 for it)."""
        due = due_from(deliver_after, deliver_at)
        tracer = tracing.tracer(self.app_id)
        if tracer is None:
            return await self._publish(pubsub, topic, data, content_type, partition_key,
                                       metadata, due, None)
        # a child of the delivery being handled, if any (a handler publishing)
        attributes = {"messaging.system": "dapr", "messaging.operation.type": "send",
                      "messaging.destination.name": topic, "dapr.pubsub": pubsub}
        with tracer.span(f"publish {topic}", tracing.PRODUCER, tracing.outgoing(),
                         attributes) as span:
            event = await self._publish(pubsub, topic, data, content_type, partition_key,
                                        metadata, due, span.headers())
            span.set("messaging.message.id", event.id)
            return event

    async def _publish(
        self, pubsub: str, topic: str, data: Any, content_type: str | None,
        partition_key: str | None, metadata: Mapping[str, str] | None,
        due: datetime | None, trace: Mapping[str, str] | None,
    ) -> CloudEvent:
        # no JSON check here: the broker encodes the event anyway and raises the same
        # TypeError, so checking first would serialize the data twice
        event = self._new_event(pubsub, topic, data, content_type=content_type,
                                partition_key=partition_key, metadata=metadata, trace=trace)
        broker = await (await self._source()).get(pubsub)
        if due is None:
            await broker.publish(topic, event)
        else:
            await publish_at(broker, topic, [event], [due])
        return event

    def event(
        self,
        pubsub: str,
        topic: str,
        data: Any,
        *,
        content_type: str | None = None,
        partition_key: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> CloudEvent:
        """The event :meth:`publish` would send; data that is not JSON (and not bytes or
        str) raises TypeError here, a bad ``ttlInSeconds`` ValueError."""
        event = self._new_event(pubsub, topic, data, content_type=content_type,
                                partition_key=partition_key, metadata=metadata)
        if content_type is None and event.datacontenttype == JSON_CONTENT_TYPE:
            json.dumps(data)
        return event

    def _new_event(
        self,
        pubsub: str,
        topic: str,
        data: Any,
        *,
        content_type: str | None,
        partition_key: str | None,
        metadata: Mapping[str, str] | None,
        trace: Mapping[str, str] | None = None,
    ) -> CloudEvent:
        attributes = envelope(self.app_id, new_id(), topic=topic, pubsub=pubsub, trace=trace)
        attributes.update(metadata_extensions(metadata or {}))
        if partition_key:  # the argument wins over metadata["partitionKey"]
            attributes["partitionkey"] = partition_key
        return event_from_attributes(attributes, data, content_type or _content_type(data))

    # --- running -----------------------------------------------------------------------------
    async def start(self) -> None:
        """Start one delivery worker per subscription, and the invocation worker if methods
        are registered (a failed start stops those started)."""
        if (self._workers or self._method_worker is not None or self._binding_workers
                or self._actor_host is not None):
            return
        if tracing.tracer(self.app_id) is None:  # none yet: the OTEL_* variables may ask
            self._traces = tracing.configure(self.app_id, tracing.from_env()) is not None
        source = await self._source()
        channel = InProcessChannel(self._handlers)
        if self.scheduler and self._schedulers is None:
            self._schedulers = Schedulers(source.names(), source.get)
            self._schedulers.start()
        try:
            for entry in self._topics.values():
                broker = await source.get(entry.pubsub)
                options = self.options
                if entry.max_concurrency is not None:
                    options = DeliveryOptions(
                        max_concurrency=entry.max_concurrency,
                        max_deliveries=options.max_deliveries,
                        backoff=options.backoff,
                        drain_timeout=options.drain_timeout,
                    )
                worker = DeliveryWorker(
                    broker, entry.subscription(), self.app_id, channel, options,
                    group=source.group(entry.pubsub),
                    start_from=source.start_from(entry.pubsub),
                )
                await worker.start()
                self._workers.append(worker)
            for subscription, actor_type, expression in self._actor_routes:
                actors = ActorEventChannel(await self._actor_service(), actor_type, expression)
                worker = DeliveryWorker(
                    await source.get(subscription.pubsub_name), subscription, self.app_id,
                    actors, self.options, group=source.group(subscription.pubsub_name),
                    start_from=source.start_from(subscription.pubsub_name),
                )
                await worker.start()
                self._workers.append(worker)
            if self._binding_handlers or (
                self._resources_path is not None and source.has_bindings()
            ):
                await self._start_bindings()
            if self._actor_types:
                await self._start_actors()
            if self._methods:
                broker = await source.get(source.invocation_pubsub())
                method_worker = MethodWorker(broker, self.app_id, self._methods)
                await method_worker.start()
                self._method_worker = method_worker
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Take no more events, let handlers in flight finish, close the brokers."""
        workers, self._workers = self._workers, []
        method_worker, self._method_worker = self._method_worker, None
        binding_workers, self._binding_workers = self._binding_workers, []
        stopping = [w.stop() for w in [*workers, *binding_workers]]
        if method_worker is not None:
            stopping.append(method_worker.stop())
        await asyncio.gather(*stopping, return_exceptions=True)
        bindings, self._bindings = self._bindings, None
        if bindings is not None:
            await bindings.close()
        host, self._actor_host = self._actor_host, None
        if host is not None:
            await host.stop()
        actors, self._actors = self._actors, None
        if actors is not None:
            await actors.close()
        schedulers, self._schedulers = self._schedulers, None
        if schedulers is not None:
            await schedulers.stop()
        if self._brokers is not None:
            brokers, self._brokers = self._brokers, None
            await brokers.close()
        if self._traces:  # after the workers: their last spans are exported too
            self._traces = False
            await tracing.shutdown(self.app_id)

    @asynccontextmanager
    async def run(self) -> AsyncIterator[App]:
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    async def _source(self) -> _Brokers:
        async with self._brokers_lock:
            if self._brokers is None:
                self._brokers = await _Brokers.open(
                    self.app_id, self._broker_url, self._resources_path
                )
            return self._brokers


def _name(handler: object) -> str:
    return str(getattr(handler, "__name__", type(handler).__name__))


def _merge(entry: _Topic, attribute: str, value: object) -> None:
    """A per-topic setting may be given on any of its decorators, but only one value."""
    if value is None:
        return
    current = getattr(entry, attribute)
    if current is not None and current != value:
        raise ValueError(f"topic {entry.topic!r}: {attribute} is both {current!r} and {value!r}")
    setattr(entry, attribute, value)


JSON_CONTENT_TYPE = "application/json"


def _content_type(data: Any) -> str:
    if isinstance(data, bytes):
        return "application/octet-stream"
    if isinstance(data, str):
        return "text/plain"
    return JSON_CONTENT_TYPE
