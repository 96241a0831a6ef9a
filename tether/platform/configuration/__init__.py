"""Configuration: Dapr's configuration API (get, subscribe, unsubscribe) over stores, and
an in-process subscription for Python code (docs/configuration.md).

Stores: ``configuration.redis`` (keyspace notifications) and ``configuration.postgresql``
(LISTEN/NOTIFY).
"""

from tether.platform.configuration.sdk import open_configuration_store, subscribe_configuration
from tether.platform.configuration.store import (
    ConfigurationItem,
    ConfigurationStore,
    ConfigurationStoreError,
    ConfigurationWatch,
)

__all__ = [
    "ConfigurationItem",
    "ConfigurationStore",
    "ConfigurationStoreError",
    "ConfigurationWatch",
    "open_configuration_store",
    "subscribe_configuration",
]
