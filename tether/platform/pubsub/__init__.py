"""Pub/sub building block: Dapr pub/sub components mapped to Tether brokers."""

from tether.platform.pubsub.registry import (
    PUBSUB_TYPES,
    SECRET_REFS_UNSUPPORTED,
    PubSubConfigError,
    PubSubRegistry,
    PubSubSpec,
    broker_spec,
    open_spec,
)

__all__ = [
    "PUBSUB_TYPES",
    "SECRET_REFS_UNSUPPORTED",
    "PubSubConfigError",
    "PubSubRegistry",
    "PubSubSpec",
    "broker_spec",
    "open_spec",
]
