"""Group membership, partition leases, fetching and commits over a :class:`LogStore`.

Each member heartbeats into the store; the live members, sorted, split the partitions
round-robin (partition p belongs to members[p % n]). A member fetches a partition only while
it holds the partition's lease, so two members never hand out the same partition at once:

* a member that is no longer assigned a partition drains what it handed out, commits, and
  releases the lease; the new owner claims it on its next tick;
* a member that dies stops renewing; its lease and membership expire after the session
  timeout and the survivors take its partitions from the last committed offset, so every
  unacknowledged event is delivered again.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tether.brokers.base import SubscribeOptions, new_member_id
from tether.brokers.offsets import OffsetTracker
from tether.brokers.subscription import Record, Subscription
from tether.platform.aio import cancel_task
from tether.platform.events import CloudEvent

if TYPE_CHECKING:
    from tether.brokers.log.broker import LogBroker

log = logging.getLogger(__name__)

FETCH_BATCH = 500


@dataclass(slots=True)
class _OwnedPartition:
    tracker: OffsetTracker
    committed: int
    task: asyncio.Task[None] | None = field(default=None)


class LogSubscription(Subscription):
    def __init__(
        self, broker: LogBroker, topic: str, group: str, options: SubscribeOptions | None
    ) -> None:
        super().__init__(topic, group, options)
        self._broker = broker
        self._store = broker.store
        self.member = new_member_id()
        self._owned: dict[int, _OwnedPartition] = {}
        self._partition_count = 0
        self._coordinator: asyncio.Task[None] | None = None

    @property
    def assigned_partitions(self) -> list[int]:
        return sorted(self._owned)

    # --- Subscription hooks -------------------------------------------------------------------
    async def _start(self) -> None:
        self._partition_count = await self._broker.partition_count(self.topic)
        await self._rebalance()
        self._coordinator = asyncio.create_task(self._coordinate(), name=f"coord:{self.topic}")

    async def _stop_fetching(self) -> None:
        await cancel_task(self._coordinator)
        for owned in self._owned.values():
            await cancel_task(owned.task)

    async def _finish(self) -> None:
        for partition in list(self._owned):
            await self._commit(partition)
            await self._store.release(self.group, self.topic, partition, self.member)
        self._owned.clear()
        await self._store.leave(self.group, self.topic, self.member)

    async def _on_settled(self, record: Record) -> None:
        owned = self._owned.get(record.partition)
        if owned is not None:
            owned.tracker.settle(record.position)

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        await self._broker.publish(topic, event)

    # --- coordination -------------------------------------------------------------------------
    async def _coordinate(self) -> None:
        settings = self._broker.settings
        loop = asyncio.get_running_loop()
        next_heartbeat = loop.time() + settings.heartbeat_interval
        while True:
            await asyncio.sleep(settings.commit_interval)
            try:
                for partition in list(self._owned):
                    await self._commit(partition)
                if loop.time() >= next_heartbeat:
                    next_heartbeat = loop.time() + settings.heartbeat_interval
                    await self._rebalance()
            except asyncio.CancelledError:
                raise
            except Exception:  # a store hiccup must not kill the member; retry next tick
                log.exception("%s/%s: coordination failed; retrying", self.topic, self.group)

    async def _rebalance(self) -> None:
        ttl = self._broker.settings.session_timeout
        members = await self._store.heartbeat(self.group, self.topic, self.member, ttl)
        if self.member not in members:  # the store just expired us: re-register next tick
            members = sorted([*members, self.member])
        mine = {
            p for p in range(self._partition_count) if members[p % len(members)] == self.member
        }
        leaving = sorted(set(self._owned) - mine)
        if leaving:
            await self._hand_over(leaving)
        for partition in sorted(set(self._owned) & mine):
            if not await self._store.claim(self.group, self.topic, partition, self.member, ttl):
                await self._lost(partition)
        for partition in sorted(mine - set(self._owned)):
            if await self._store.claim(self.group, self.topic, partition, self.member, ttl):
                await self._take(partition)

    async def _take(self, partition: int) -> None:
        found = await self._store.committed(self.group, self.topic, partition)
        offset = committed = found or 0
        if found is None and self.options.start_from == "latest":  # a new group
            offset = await self._store.end_offset(self.topic, partition)
            committed = -1  # written at the next commit tick, so a restart starts there
        owned = _OwnedPartition(tracker=OffsetTracker(offset), committed=committed)
        self._owned[partition] = owned
        owned.task = asyncio.create_task(
            self._fetch(partition, owned, offset), name=f"fetch:{self.topic}[{partition}]"
        )
        log.debug("%s/%s: %s took partition %d at %d", self.topic, self.group, self.member,
                  partition, offset)

    async def _hand_over(self, partitions: list[int]) -> None:
        """Rebalance: drain what this member handed out from these partitions (all at once,
        so the wait is one drain, not one per partition), commit, release the leases."""
        for partition in partitions:
            await cancel_task(self._owned[partition].task)
        await self._revoke(partitions, self._broker.settings.session_timeout / 2)
        for partition in partitions:
            await self._commit(partition)
            del self._owned[partition]
            await self._store.release(self.group, self.topic, partition, self.member)

    async def _lost(self, partition: int) -> None:
        """Our lease was taken (we were presumed dead): stop at once, commit nothing."""
        log.warning("%s/%s: lease on partition %d lost", self.topic, self.group, partition)
        owned = self._owned.pop(partition)
        await cancel_task(owned.task)
        await self._revoke([partition], 0)

    async def _commit(self, partition: int) -> None:
        owned = self._owned.get(partition)
        if owned is None:
            return
        point = owned.tracker.commit_point
        if point != owned.committed:
            if await self._store.commit(self.group, self.topic, partition, point, self.member):
                owned.committed = point

    async def _fetch(self, partition: int, owned: _OwnedPartition, offset: int) -> None:
        store, topic = self._store, self.topic
        poll = self._broker.settings.poll_interval
        while True:
            records = await store.read(topic, partition, offset, FETCH_BATCH)
            if not records:
                await store.wait_for_data(topic, poll)
                continue
            for record in records:
                owned.tracker.register(record.position)
                await self._put(record)
            offset = records[-1].position + 1
            if len(records) < FETCH_BATCH and store.wakes_after_read:
                # the partition had no more; an append since that read ends the wait at once
                await store.wait_for_data(topic, poll)
