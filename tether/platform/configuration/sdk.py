"""In-process configuration for Python code, without the sidecar's HTTP API.

    store = open_configuration_store(component)
    await store.start()
    print(await store.get(["a"], {}))
    async with subscribe_configuration(store, ["a", "b"]) as changes:
        async for items in changes:      # {key: ConfigurationItem}
            ...

The subscription listens as soon as the ``async with`` is entered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager

from tether.platform.components import Component
from tether.platform.configuration.registry import configuration_store
from tether.platform.configuration.store import ConfigurationStore, ConfigurationWatch


def open_configuration_store(component: Component) -> ConfigurationStore:
    """The store of a ``configuration.*`` component (call ``start()`` before use)."""
    return configuration_store(component)


@asynccontextmanager
async def subscribe_configuration(
    store: ConfigurationStore, keys: Sequence[str] = (), metadata: Mapping[str, str] | None = None
) -> AsyncIterator[ConfigurationWatch]:
    """Changes of ``keys`` (every key when empty) until the ``async with`` block ends."""
    watch = await store.watch(keys, metadata or {})
    try:
        yield watch
    finally:
        await watch.close()
