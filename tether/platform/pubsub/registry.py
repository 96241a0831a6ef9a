"""Pub/sub components turned into brokers.

:func:`broker_spec` maps one Dapr ``pubsub.*`` component to the broker URL Tether opens for
it (plus the subscriber-side options some components carry); :class:`PubSubRegistry` holds
the specs of one app's components and opens each broker lazily, once, on first use.

Every component is mapped when the registry is built, so a bad component stops the sidecar
at startup instead of failing the first publish.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from tether.brokers import Broker, BrokerConfigError, open_broker
from tether.brokers.base import StartFrom
from tether.platform import env
from tether.platform.components import Component, TopicScopes, metadata
from tether.platform.components.metadata import MetadataError
from tether.platform.components.registry import ComponentTypes, require_extra
from tether.platform.errors import ConfigError

#: a component reached the registry with its secretKeyRef values unresolved: its caller
#: skipped tether.platform.secrets.resolve_app_secrets, which tether run and tether.App call
SECRET_REFS_UNSUPPORTED = (
    "secretKeyRef is not resolved; resolve the components' secret references first "
    "with tether.platform.secrets.resolve_app_secrets, as tether run and tether.App do"
)
INITIAL_OFFSETS = ("newest", "oldest")
#: Dapr's initialOffset values in the broker layer's words (SubscribeOptions.start_from)
START_FROM: Mapping[str, StartFrom] = {"oldest": "earliest", "newest": "latest"}


class PubSubConfigError(ConfigError):
    """A pub/sub component Tether cannot turn into a broker; the message names it."""


@dataclass(frozen=True, slots=True)
class PubSubSpec:
    """What Tether opens for one pub/sub component."""

    name: str
    type: str
    version: str
    #: the broker URL, safe to show (no secret in it)
    url: str
    topic_scopes: TopicScopes = field(default_factory=TopicScopes)
    #: the consumer group subscribers use (Kafka ``consumerGroup``); None: the app id
    consumer_group: str | None = None
    #: where a new group starts (Kafka ``initialOffset``): newest or oldest
    initial_offset: str | None = None
    #: a secret the URL cannot carry (Service Bus connection string), kept out of repr
    secret: str | None = field(default=None, repr=False)

    @property
    def start_from(self) -> StartFrom | None:
        """Where a new consumer group starts. Without initialOffset: None, the backend's
        default, which is the beginning of the topic (Dapr's Kafka default is newest;
        Tether keeps its documented promise that a new group sees earlier events,
        docs/components.md)."""
        return START_FROM[self.initial_offset] if self.initial_offset else None


def _spec(
    component: Component,
    url: str,
    *,
    consumer_group: str | None = None,
    initial_offset: str | None = None,
    secret: str | None = None,
) -> PubSubSpec:
    return PubSubSpec(
        name=component.name,
        type=component.type,
        version=component.version,
        url=url,
        topic_scopes=component.topic_scopes or TopicScopes(),
        consumer_group=consumer_group,
        initial_offset=initial_offset,
        secret=secret,
    )


def _embedded(component: Component) -> PubSubSpec:
    return _spec(component, f"embedded://{metadata.required(component, 'path')}")


def _memory(component: Component) -> PubSubSpec:
    # named after the component: every broker of this component in the process shares it
    return _spec(component, f"memory://{component.name}")


def _kafka(component: Component) -> PubSubSpec:
    require_extra("kafka", "aiokafka")
    auth = (metadata.text(component, "authType") or "none").lower()
    if auth != "none":
        raise MetadataError("authType", f"{auth!r} is not supported yet; use none")
    brokers = [b.strip() for b in metadata.required(component, "brokers").split(",")]
    if not any(brokers):
        raise MetadataError("brokers", "names no host:port")
    offset = metadata.text(component, "initialOffset")
    if offset is not None and offset.lower() not in INITIAL_OFFSETS:
        raise MetadataError("initialOffset", f"{offset!r} must be newest or oldest")
    return _spec(
        component,
        "kafka://" + ",".join(b for b in brokers if b),
        consumer_group=metadata.text(component, "consumerGroup"),
        initial_offset=offset.lower() if offset else None,
    )


def _redis(component: Component) -> PubSubSpec:
    require_extra("redis", "redis")
    return _spec(component, metadata.RedisSettings.from_component(component).url)


def _servicebus(component: Component) -> PubSubSpec:
    require_extra("servicebus", "azure.servicebus")
    connection_string = metadata.required(
        component, "connectionString", "namespaceName with Azure AD is not supported yet"
    )
    from tether.brokers.servicebus.settings import connection_string_endpoint

    try:
        host = connection_string_endpoint(connection_string)
    except BrokerConfigError as exc:
        raise PubSubConfigError(str(exc)) from None
    return _spec(component, f"servicebus://{host}", secret=connection_string)


#: the pub/sub component types Tether can open, and the broker each becomes
PUBSUB_TYPES = ComponentTypes(
    "pubsub",
    "pub/sub component",
    {
    "pubsub.tether.embedded": _embedded,
    "pubsub.in-memory": _memory,
    "pubsub.kafka": _kafka,
    "pubsub.redis": _redis,
    "pubsub.azure.servicebus.topics": _servicebus,
    },
    PubSubConfigError,
)


def broker_spec(component: Component) -> PubSubSpec:
    """The broker for one pub/sub component; raises PubSubConfigError naming the problem."""
    refs = component.secret_refs()
    if refs and component.type in PUBSUB_TYPES.factories:
        raise PUBSUB_TYPES.fail(
            component, f"metadata {', '.join(sorted(refs))}: {SECRET_REFS_UNSUPPORTED}"
        )
    return PUBSUB_TYPES.build(component)


def open_spec(spec: PubSubSpec) -> Broker:
    """A (not yet connected) broker for ``spec``."""
    if spec.secret is None:
        return open_broker(spec.url)
    # Service Bus: the connection string never goes through a URL or the environment
    from tether.brokers.servicebus import AzureServiceBusClients, ServiceBusBroker
    from tether.brokers.servicebus.settings import ServiceBusSettings

    settings = ServiceBusSettings()
    clients = AzureServiceBusClients(spec.secret, settings.lock_renewal)
    return ServiceBusBroker(clients, spec.url, settings)


class PubSubRegistry:
    """The pub/sub components one app sees, and their brokers (opened on first use)."""

    def __init__(
        self,
        components: Iterable[Component],
        *,
        opener: Callable[[PubSubSpec], Broker] = open_spec,
    ) -> None:
        self._specs = {c.name: broker_spec(c) for c in PUBSUB_TYPES.of(components)}
        self._opener = opener
        self._brokers: dict[str, Broker] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._closed = False

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def spec(self, name: str) -> PubSubSpec | None:
        return self._specs.get(name)

    async def broker(self, name: str) -> Broker:
        """The connected broker of component ``name`` (KeyError if there is none)."""
        spec = self._specs[name]
        broker = self._brokers.get(name)
        if broker is not None:
            return broker
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:  # concurrent first publishes open one broker, not several
            if self._closed:
                raise PubSubConfigError("the pub/sub registry is closed")
            broker = self._brokers.get(name)
            if broker is None:
                broker = self._opener(spec)
                await broker.connect()
                self._brokers[name] = broker
            return broker

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Close every broker opened so far; the registry opens no new ones after this."""
        self._closed = True
        brokers, self._brokers = list(self._brokers.values()), {}
        results = await asyncio.gather(
            *(b.close(drain_timeout) for b in brokers), return_exceptions=True
        )
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors:
            raise errors[0]


def runtime_pubsub(registry: PubSubRegistry) -> str | None:
    """The pub/sub component Tether's own topics travel on (service invocation, binding
    events): ``TETHER_INVOKE_PUBSUB`` if set (naming no component is a PubSubConfigError),
    else the app's first; None if it has none."""
    named = env.get(env.TETHER_INVOKE_PUBSUB)
    if named is not None:
        if registry.spec(named) is None:
            raise PubSubConfigError(
                f"{env.TETHER_INVOKE_PUBSUB}={named!r} names no pub/sub component of the app "
                f"(it has: {', '.join(registry.names) or 'none'})"
            )
        return named
    return registry.names[0] if registry.names else None
