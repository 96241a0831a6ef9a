"""Configuration: Dapr's configuration API (get, subscribe, unsubscribe) over stores, and
an in-process subscription for Python code (docs/configuration.md).

Stores: ``configuration.redis`` (keyspace notifications) and ``configuration.postgresql``
(LISTEN/NOTIFY). :mod:`.service` holds the API's operations for any front end (the
sidecar's HTTP API, which pushes changes to the app, is ``tether.sidecar.configuration``).
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
