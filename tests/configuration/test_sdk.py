"""The in-process subscription: ``async with subscribe_configuration(...)``."""

from __future__ import annotations

import asyncio
import uuid

from tests.configuration.conftest import Backend, subscribe_metadata
from tether.platform.configuration import (
    ConfigurationItem,
    open_configuration_store,
    subscribe_configuration,
)


async def test_changes_arrive_in_process(backend: Backend) -> None:
    store = open_configuration_store(backend.component)
    await store.start()
    k = f"k-{uuid.uuid4().hex[:10]}"
    metadata = {n.removeprefix("metadata."): v for n, v in subscribe_metadata(backend).items()}
    try:
        async with subscribe_configuration(store, [k], metadata) as changes:
            await backend.set(k, "hello", "5")
            items = await asyncio.wait_for(anext(aiter(changes)), 60)
        assert items == {k: ConfigurationItem("hello", "5", {})}
        assert await store.get([k], {}) == items
    finally:
        await store.close()
