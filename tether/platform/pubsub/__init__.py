"""Pub/sub building block: Dapr pub/sub components mapped to Tether brokers, and Dapr's
publish through them."""

from tether.platform.pubsub.bulk import BulkEntry, parse_bulk
from tether.platform.pubsub.publishing import BulkFailure, Publisher, Target
from tether.platform.pubsub.registry import (
    PUBSUB_TYPES,
    SECRET_REFS_UNSUPPORTED,
    PubSubConfigError,
    PubSubRegistry,
    PubSubSpec,
    broker_spec,
    open_spec,
    runtime_pubsub,
)

__all__ = [
    "PUBSUB_TYPES",
    "SECRET_REFS_UNSUPPORTED",
    "BulkEntry",
    "BulkFailure",
    "PubSubConfigError",
    "PubSubRegistry",
    "PubSubSpec",
    "Publisher",
    "Target",
    "broker_spec",
    "open_spec",
    "parse_bulk",
    "runtime_pubsub",
]
