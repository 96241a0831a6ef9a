"""What a partitioned log store must provide to back a :class:`LogBroker`."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import ClassVar

from tether.brokers.subscription import Record
from tether.platform.events import CloudEvent

#: ``(partition, key, event)`` as handed to :meth:`LogStore.append`
Entry = tuple[int, str | None, CloudEvent]


class LogStore(abc.ABC):
    """Topics of N append-only partitions, committed offsets per group, and the membership
    and lease tables a group needs to split partitions among members (possibly in several
    processes sharing the store)."""

    async def open(self) -> None:  # noqa: B027 - optional hook
        """Open files or connections."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release files or connections."""

    # --- topics and messages ------------------------------------------------------------------
    @abc.abstractmethod
    async def ensure_topic(self, topic: str, partitions: int) -> int:
        """Create the topic if missing; return its partition count (an existing topic keeps
        its count)."""

    @abc.abstractmethod
    async def append(self, topic: str, entries: Sequence[Entry]) -> None:
        """Append entries atomically (all or none); they are durable when this returns."""

    #: whether an append costs a round trip (a thread handoff, a transaction), so that the
    #: broker groups concurrent publishes into :meth:`append_many` calls
    groups_appends: ClassVar[bool] = False
    #: whether :meth:`wait_for_data` returns at once when the topic was appended since the
    #: calling task's last :meth:`read`: a fetcher that read less than a full batch then
    #: waits without reading again (an empty read per wake-up saved)
    wakes_after_read: ClassVar[bool] = False

    async def append_many(self, batches: Sequence[tuple[str, Sequence[Entry]]]) -> None:
        """Append several topics' entries, all or none where the store can (one round trip);
        by default one :meth:`append` per topic."""
        for topic, entries in batches:
            await self.append(topic, entries)

    @abc.abstractmethod
    async def read(self, topic: str, partition: int, offset: int, limit: int) -> list[Record]:
        """Up to ``limit`` records from ``offset`` on, in order, ``position`` = offset.
        Undecodable entries come back with ``event`` None and ``error`` set."""

    @abc.abstractmethod
    async def wait_for_data(self, topic: str, timeout: float) -> None:
        """Return soon after an append to ``topic``, or after ``timeout`` seconds."""

    # --- consumer groups ----------------------------------------------------------------------
    @abc.abstractmethod
    async def committed(self, group: str, topic: str, partition: int) -> int | None:
        """The next offset the group should read; None while it has committed none (a new
        group)."""

    @abc.abstractmethod
    async def end_offset(self, topic: str, partition: int) -> int:
        """The offset the partition's next appended entry will get."""

    @abc.abstractmethod
    async def commit(
        self, group: str, topic: str, partition: int, offset: int, member: str
    ) -> bool:
        """Record that the group finished everything before ``offset``, only while
        ``member`` holds the partition's lease (a member presumed dead must not move the new
        owner's position). Returns whether it was written."""

    @abc.abstractmethod
    async def heartbeat(self, group: str, topic: str, member: str, ttl: float) -> list[str]:
        """Register or refresh ``member`` for ``ttl`` seconds; return the live members,
        sorted (expired members are removed)."""

    @abc.abstractmethod
    async def live_members(self, group: str, topic: str) -> int:
        """How many members of ``group`` on ``topic`` have an unexpired heartbeat."""

    @abc.abstractmethod
    async def leave(self, group: str, topic: str, member: str) -> None:
        """Remove ``member`` and release its leases."""

    @abc.abstractmethod
    async def claim(self, group: str, topic: str, partition: int, member: str, ttl: float) -> bool:
        """Take or renew the partition's lease for ``ttl`` seconds; False while another
        member holds an unexpired lease."""

    @abc.abstractmethod
    async def release(self, group: str, topic: str, partition: int, member: str) -> None:
        """Give the lease up (only if ``member`` holds it)."""
