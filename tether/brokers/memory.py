"""``memory://``: an in-process broker with the same semantics as the others.

It is the test double for everything above the broker layer and the reference the contract
suite is written against. ``memory://`` gives a private broker; ``memory://NAME`` shares one
store between every broker opened with that name in this process. Nothing survives the
process.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from tether.brokers.log.broker import LogBroker, LogSettings
from tether.brokers.log.store import Entry, LogStore
from tether.brokers.subscription import Record
from tether.platform.events import CloudEvent


@dataclass(slots=True)
class _Message:
    key: str | None
    event: CloudEvent | None  # None for raw bytes injected by tests
    raw: bytes | None = None


@dataclass(slots=True)
class _Topic:
    partitions: list[list[_Message]]
    appended: asyncio.Event = field(default_factory=asyncio.Event)


class MemoryStore(LogStore):
    def __init__(self) -> None:
        self._topics: dict[str, _Topic] = {}
        self._offsets: dict[tuple[str, str, int], int] = {}
        self._members: dict[tuple[str, str], dict[str, float]] = {}
        self._leases: dict[tuple[str, str, int], tuple[str, float]] = {}

    async def ensure_topic(self, topic: str, partitions: int) -> int:
        existing = self._topics.get(topic)
        if existing is None:
            existing = self._topics[topic] = _Topic([[] for _ in range(partitions)])
        return len(existing.partitions)

    async def append(self, topic: str, entries: Sequence[Entry]) -> None:
        state = self._topics[topic]
        for partition, key, event in entries:
            state.partitions[partition].append(_Message(key, event))
        self._wake(state)

    def append_raw(self, topic: str, partition: int, raw: bytes) -> None:
        """Tests: put undecodable bytes on a partition, as a foreign producer might."""
        state = self._topics[topic]
        state.partitions[partition].append(_Message(None, None, raw))
        self._wake(state)

    async def read(self, topic: str, partition: int, offset: int, limit: int) -> list[Record]:
        log = self._topics[topic].partitions[partition]
        records = []
        for position in range(offset, min(offset + limit, len(log))):
            message = log[position]
            if message.event is None:
                records.append(
                    Record(partition, position, None, None, raw=message.raw, error="not an event")
                )
            else:
                records.append(Record(partition, position, message.key, message.event))
        return records

    async def wait_for_data(self, topic: str, timeout: float) -> None:
        event = self._topics[topic].appended
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except TimeoutError:
            pass

    async def committed(self, group: str, topic: str, partition: int) -> int | None:
        return self._offsets.get((group, topic, partition))

    async def end_offset(self, topic: str, partition: int) -> int:
        return len(self._topics[topic].partitions[partition])

    async def commit(
        self, group: str, topic: str, partition: int, offset: int, member: str
    ) -> bool:
        lease = self._leases.get((group, topic, partition))
        if lease is None or lease[0] != member:
            return False
        self._offsets[(group, topic, partition)] = offset
        return True

    async def heartbeat(self, group: str, topic: str, member: str, ttl: float) -> list[str]:
        now = time.monotonic()
        members = self._members.setdefault((group, topic), {})
        members[member] = now + ttl
        for name in [m for m, expiry in members.items() if expiry < now]:
            del members[name]
        return sorted(members)

    async def live_members(self, group: str, topic: str) -> int:
        now = time.monotonic()
        return sum(1 for e in self._members.get((group, topic), {}).values() if e >= now)

    async def leave(self, group: str, topic: str, member: str) -> None:
        self._members.get((group, topic), {}).pop(member, None)
        for slot in [s for s, (owner, _) in self._leases.items() if owner == member]:
            del self._leases[slot]

    async def claim(self, group: str, topic: str, partition: int, member: str, ttl: float) -> bool:
        now = time.monotonic()
        slot = (group, topic, partition)
        lease = self._leases.get(slot)
        if lease is not None and lease[0] != member and lease[1] > now:
            return False
        self._leases[slot] = (member, now + ttl)
        return True

    async def release(self, group: str, topic: str, partition: int, member: str) -> None:
        slot = (group, topic, partition)
        if self._leases.get(slot, ("", 0.0))[0] == member:
            del self._leases[slot]

    @staticmethod
    def _wake(state: _Topic) -> None:
        # wake every waiting fetcher, then arm a fresh event for the next wait
        state.appended.set()
        state.appended = asyncio.Event()


_named_stores: dict[str, MemoryStore] = {}

#: the in-process group protocol can run fast: nobody is across a network
MEMORY_SETTINGS = LogSettings(session_timeout=2.0, heartbeat_interval=0.1, commit_interval=0.02)


class MemoryBroker(LogBroker):
    def __init__(self, name: str = "", settings: LogSettings | None = None) -> None:
        if name:
            store = _named_stores.setdefault(name, MemoryStore())
        else:
            store = MemoryStore()
        super().__init__(store, f"memory://{name}", settings or MEMORY_SETTINGS)

    @property
    def memory_store(self) -> MemoryStore:
        assert isinstance(self.store, MemoryStore)
        return self.store


def from_url(url: str) -> MemoryBroker:
    """``memory://`` or ``memory://NAME``."""
    return MemoryBroker(url.removeprefix("memory://").strip("/"))
