from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.brokers.harness import Harness
from tether.brokers.memory import MemoryBroker, _named_stores


class MemoryHarness(Harness):
    name = "memory"
    unsupported = {
        "process_kill": "memory:// lives in one process; nothing to share with a child",
    }

    def __init__(self) -> None:
        self.store_name = f"test-{uuid.uuid4().hex[:8]}"

    def url(self) -> str:
        return f"memory://{self.store_name}"

    async def inject_raw(self, topic: str, payload: bytes) -> None:
        broker = MemoryBroker(self.store_name)
        await broker.connect()
        count = await broker.partition_count(topic)
        broker.memory_store.append_raw(topic, count - 1, payload)


@pytest.fixture
def memory_harness() -> Iterator[MemoryHarness]:
    harness = MemoryHarness()
    yield harness
    _named_stores.pop(harness.store_name, None)
