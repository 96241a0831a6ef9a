"""The ``servicebus://`` URL: options from the query, the connection string from the
environment (it never appears in the URL, in logs or in errors)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tether.brokers.base import BrokerConfigError
from tether.platform import env as environment

DEFAULT_CONNECTION_STRING_ENV = "TETHER_SERVICEBUS_CONNECTION_STRING"

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


@dataclass(frozen=True, slots=True)
class ServiceBusSettings:
    """Options from the URL query (docs/brokers-servicebus.md)."""

    #: subscriptions require sessions: per-key order and one handler per key across members
    sessions: bool = True
    #: the subscriptions' native MaxDeliveryCount; None: SubscribeOptions.max_deliveries
    max_delivery_count: int | None = None
    #: sessions one subscription member works on at once
    max_sessions: int = 8
    #: a session with nothing new for this long (and nothing unsettled) is released
    idle_timeout: float = 1.0
    #: create missing topics, subscriptions and rules (needs a Manage claim)
    manage_entities: bool = True
    #: how long AutoLockRenewer keeps a message or session lock alive
    lock_renewal: float = 3600.0

    def __post_init__(self) -> None:
        if self.max_delivery_count is not None and self.max_delivery_count < 1:
            raise BrokerConfigError("max_delivery_count must be at least 1")
        if self.max_sessions < 1:
            raise BrokerConfigError("max_sessions must be at least 1")
        if self.idle_timeout <= 0 or self.lock_renewal <= 0:
            raise BrokerConfigError("idle_timeout and lock_renewal must be positive")


@dataclass(frozen=True, slots=True)
class ServiceBusUrl:
    """A parsed ``servicebus://`` URL."""

    connection_string: str
    #: the URL without secrets, as ``broker.url`` shows it
    url: str
    settings: ServiceBusSettings


def _parse_bool(name: str, value: str) -> bool:
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise BrokerConfigError(f"servicebus:// option {name} must be true or false")


def _parse_number(kind: type[int] | type[float], name: str, value: str) -> int | float:
    try:
        return kind(value)
    except ValueError:
        raise BrokerConfigError(f"servicebus:// option {name} must be a number") from None


_OPTIONS: dict[str, Callable[[str, str], Any]] = {
    "sessions": _parse_bool,
    "max_delivery_count": partial(_parse_number, int),
    "max_sessions": partial(_parse_number, int),
    "idle_timeout": partial(_parse_number, float),
    "manage_entities": _parse_bool,
    "lock_renewal": partial(_parse_number, float),
}


def connection_string_endpoint(connection_string: str) -> str:
    """The namespace host named by a connection string's ``Endpoint=sb://HOST/``."""
    for part in connection_string.split(";"):
        name, _, value = part.strip().partition("=")
        if name.lower() == "endpoint":
            host = urlsplit(value.strip()).hostname
            if host:
                return host
    raise BrokerConfigError("the Service Bus connection string has no Endpoint=sb://HOST/")


def parse_url(url: str) -> ServiceBusUrl:
    """``servicebus://[NAMESPACE.servicebus.windows.net][?connection_string_env=VAR&...]``.

    The connection string is read from the environment (TETHER_SERVICEBUS_CONNECTION_STRING
    unless ``connection_string_env`` names another variable) and never appears in the URL.
    """
    parts = urlsplit(url)
    if parts.path.strip("/") or parts.username or parts.password:
        raise BrokerConfigError(
            "servicebus:// takes a namespace host and options only; the connection string "
            f"comes from the environment ({DEFAULT_CONNECTION_STRING_ENV})"
        )
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    env = query.pop("connection_string_env", DEFAULT_CONNECTION_STRING_ENV)
    unknown = sorted(set(query) - set(_OPTIONS))
    if unknown:  # names only: a value might be a secret pasted in the wrong place
        raise BrokerConfigError(
            f"unknown servicebus:// option(s) {', '.join(unknown)}; "
            f"known: connection_string_env, {', '.join(_OPTIONS)}"
        )
    settings = ServiceBusSettings(**{name: _OPTIONS[name](name, v) for name, v in query.items()})
    connection_string = (environment.get(env) or "").strip()
    if not connection_string:
        raise BrokerConfigError(
            f"servicebus:// needs a connection string in the environment variable {env}"
        )
    host = connection_string_endpoint(connection_string)
    if parts.hostname and parts.hostname.lower() != host.lower():
        raise BrokerConfigError(
            f"servicebus://{parts.hostname} does not match the namespace {host} of {env}"
        )
    clean = urlencode({"connection_string_env": env, **query})
    return ServiceBusUrl(connection_string, f"servicebus://{host}?{clean}", settings)
