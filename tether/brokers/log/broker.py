"""A :class:`Broker` over any :class:`LogStore` (memory, SQLite)."""

from __future__ import annotations

import asyncio
import itertools
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from tether.brokers.base import (
    DEFAULT_PARTITIONS,
    Broker,
    BrokerClosedError,
    BrokerConfigError,
    BrokerUnavailableError,
    SubscribeOptions,
)
from tether.brokers.log.store import Entry, LogStore
from tether.brokers.log.subscription import LogSubscription
from tether.platform import env
from tether.platform.aio import Grouped, singly
from tether.platform.events import CloudEvent

#: a publish to one of these topics (topic, event)
Publish = tuple[str, CloudEvent]


@dataclass(frozen=True, slots=True)
class LogSettings:
    """Timing of the group protocol; the embedded broker reads them from its URL."""

    default_partitions: int = DEFAULT_PARTITIONS
    #: a member silent this long is presumed dead and its partitions are taken over
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    #: how often settled offsets are written to the store
    commit_interval: float = 0.05
    #: the longest a fetcher sleeps when its partition is empty (appends wake it sooner)
    poll_interval: float = 0.5

    def __post_init__(self) -> None:
        if self.default_partitions < 1:
            raise BrokerConfigError("partitions must be at least 1")
        if self.heartbeat_interval >= self.session_timeout:
            raise BrokerConfigError("heartbeat_interval must be shorter than session_timeout")


def partition_for(key: str | None, partitions: int, counter: itertools.count[int]) -> int:
    """Stable key hashing (crc32) so one key always lands on one partition; keyless events
    are spread round-robin."""
    if key is None:
        return next(counter) % partitions
    return zlib.crc32(key.encode()) % partitions


class LogBroker(Broker):
    def __init__(self, store: LogStore, url: str, settings: LogSettings | None = None) -> None:
        self.store = store
        self.url = url
        self.settings = settings or LogSettings()
        self._partitions: dict[str, int] = {}
        self._round_robin = itertools.count()
        self._subscriptions: list[LogSubscription] = []
        self._connected = False
        # group commit: concurrent publishes (any topics) share one append, one round trip
        self._publishes: Grouped[Publish, None] = Grouped(
            self._publish_group, grouping=store.groups_appends and env.group_commit()
        )

    async def connect(self) -> None:
        if not self._connected:
            await self.store.open()
            self._connected = True

    async def close(self, drain_timeout: float = 30.0) -> None:
        if not self._connected:
            return
        await self._publishes.drain()
        subscriptions, self._subscriptions = self._subscriptions, []
        await asyncio.gather(*(s.close(drain_timeout) for s in subscriptions))
        self._connected = False
        await self.store.close()

    async def create_topic(self, topic: str, partitions: int = DEFAULT_PARTITIONS) -> None:
        self._check_open()
        if partitions < 1:
            raise BrokerConfigError("partitions must be at least 1")
        self._partitions[topic] = await self.store.ensure_topic(topic, partitions)

    async def partition_count(self, topic: str) -> int:
        count = self._partitions.get(topic)
        if count is None:
            count = await self.store.ensure_topic(topic, self.settings.default_partitions)
            self._partitions[topic] = count
        return count

    async def publish(self, topic: str, event: CloudEvent) -> None:
        self._check_open()
        await self._publishes.submit((topic, event))

    async def _publish_group(self, requests: Sequence[Publish]) -> list[BaseException | None]:
        """Publishes made concurrently, in one :meth:`LogStore.append_many`; each gets its own
        error: a topic that cannot be resolved fails its own publishes, a store that is
        unavailable fails all, anything else is retried one publish at a time."""
        results: list[BaseException | None] = [None] * len(requests)
        topics: dict[str, list[int]] = {}
        for index, (topic, _) in enumerate(requests):
            topics.setdefault(topic, []).append(index)
        batches: list[tuple[str, list[Entry]]] = []
        members: list[tuple[int, str, Entry]] = []
        for topic, indexes in topics.items():
            try:
                count = await self.partition_count(topic)
            except Exception as exc:
                for index in indexes:
                    results[index] = exc
                continue
            entries = [self._entry(requests[index][1], count) for index in indexes]
            batches.append((topic, entries))
            members += ((i, topic, entry) for i, entry in zip(indexes, entries, strict=True))
        if not batches:
            return results
        try:
            await self.store.append_many(batches)
        except (BrokerUnavailableError, BrokerClosedError) as exc:  # the store's, not an event's
            for index, _, _ in members:
                results[index] = exc
        except Exception as exc:
            if len(members) == 1:
                results[members[0][0]] = exc
            else:
                outcomes = await singly(self._append_one, [(t, e) for _, t, e in members])
                for (index, _, _), outcome in zip(members, outcomes, strict=True):
                    results[index] = outcome
        return results

    async def _append_one(self, member: tuple[str, Entry]) -> None:
        await self.store.append_many([(member[0], [member[1]])])

    def _entry(self, event: CloudEvent, partitions: int) -> Entry:
        key = event.partitionkey
        return (partition_for(key, partitions, self._round_robin), key, event)

    async def publish_batch(self, topic: str, events: Sequence[CloudEvent]) -> None:
        self._check_open()
        if not events:
            return
        count = await self.partition_count(topic)
        await self.store.append(topic, [self._entry(event, count) for event in events])

    async def live_members(self, topic: str, group: str) -> int | None:
        return await self.store.live_members(group, topic)

    def subscribe(
        self, topic: str, group: str, options: SubscribeOptions | None = None
    ) -> LogSubscription:
        self._check_open()
        subscription = LogSubscription(self, topic, group, options)
        self._subscriptions.append(subscription)
        return subscription

    def _check_open(self) -> None:
        if not self._connected:
            raise BrokerClosedError(f"broker {self.url} is not connected (closed or never opened)")
