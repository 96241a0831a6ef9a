"""Brokers: one async protocol (:class:`Broker`) and one module per backend.

``open_broker(url)`` picks the backend from the URL scheme:

=====================================  ==========================================
``memory://[name]``                    in-process (tests, demos)
``embedded://PATH``                    durable SQLite file on this machine (default)
``kafka://host:port[,host:port]``      Kafka via aiokafka (``tether[kafka]``)
``redis://host:port/db``               Redis Streams (``tether[redis]``)
``servicebus://...``                   Azure Service Bus (``tether[servicebus]``)
=====================================  ==========================================
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from tether.brokers.base import (
    Broker,
    BrokerClosedError,
    BrokerConfigError,
    BrokerError,
    BrokerUnavailableError,
    SubscribeOptions,
    dead_letter_topic_for,
)
from tether.brokers.subscription import Delivery, Subscription
from tether.platform import env


def default_broker_url() -> str:
    """The embedded broker in the data folder (``TETHER_DATA_DIR``, else ``.tether``)."""
    return f"embedded://{env.data_dir() / 'broker.db'}"


# scheme -> (module, extra that provides its client library)
_BACKENDS: dict[str, tuple[str, str | None]] = {
    "memory": ("tether.brokers.memory", None),
    "embedded": ("tether.brokers.embedded", None),
    "kafka": ("tether.brokers.kafka", "kafka"),
    "redis": ("tether.brokers.redis", "redis"),
    "rediss": ("tether.brokers.redis", "redis"),
    "servicebus": ("tether.brokers.servicebus", "servicebus"),
}


class MissingExtraError(BrokerConfigError, ImportError):
    """The backend's client library is not installed."""


def open_broker(url: str | None = None) -> Broker:
    """A (not yet connected) broker for ``url``; the embedded default when None."""
    url = url or default_broker_url()
    scheme = urlsplit(url).scheme
    if scheme not in _BACKENDS:
        known = ", ".join(f"{s}://" for s in _BACKENDS)
        raise BrokerConfigError(f"unknown broker URL scheme in {url!r}; use one of {known}")
    module_name, extra = _BACKENDS[scheme]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if extra is None or module_name in str(exc):
            raise
        raise MissingExtraError(
            f"the {scheme}:// broker needs a client library that is not installed: "
            f"pip install 'tether[{extra}]' ({exc})"
        ) from exc
    broker: Broker = module.from_url(url)
    return broker


__all__ = [
    "Broker",
    "BrokerClosedError",
    "BrokerConfigError",
    "BrokerError",
    "BrokerUnavailableError",
    "Delivery",
    "MissingExtraError",
    "SubscribeOptions",
    "Subscription",
    "dead_letter_topic_for",
    "default_broker_url",
    "open_broker",
]
