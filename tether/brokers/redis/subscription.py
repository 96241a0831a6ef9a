"""One member of a group on a Redis topic, on top of the shared subscription engine.

Coordination: every ``heartbeat_interval`` the member heartbeats into the group's members
zset and moves to the assignment the live members imply, taking or renewing partition leases
(:mod:`.scripts`). Fetching: per owned partition, a task first reclaims what the group left
pending (XAUTOCLAIM), then reads new entries (XREADGROUP). Acknowledging: settled entries are
XACKed in batches, one packed command per stream (:mod:`.wire`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from redis.exceptions import ResponseError

from tether.brokers.base import BrokerUnavailableError, SubscribeOptions, new_member_id
from tether.brokers.outage import Outage
from tether.brokers.redis.codec import from_redis_fields
from tether.brokers.redis.errors import UNAVAILABLE
from tether.brokers.redis.scripts import LEASE_HELD, LEASE_RENEWED
from tether.brokers.redis.wire import pack_command
from tether.brokers.subscription import Record, Subscription
from tether.platform.aio import cancel_task
from tether.platform.events import CloudEvent

if TYPE_CHECKING:
    from tether.brokers.redis.broker import RedisBroker

log = logging.getLogger(__name__)

#: entries read per XREADGROUP / XAUTOCLAIM call (capped by the subscription's max_in_flight)
FETCH_BATCH = 1000
#: how long a failing Redis call waits before it is tried again
RETRY_DELAY = 0.5
#: how often a member retries to claim partitions another member still holds
CLAIM_RETRY = 0.1


@dataclass(slots=True, eq=False)
class _Owned:
    """A partition stream this member holds the lease of."""

    stream: str
    valid_until: float  # loop time when the lease lapses unless renewed
    task: asyncio.Task[None] | None = None
    stopping: bool = False
    in_call: bool = False  # inside a Redis call that moves entries into our PEL
    #: where the takeover's XAUTOCLAIM scan goes on; None once every pending entry is back
    reclaim_from: bytes | str | None = "0-0"
    #: the id XGROUP CREATE starts a new group at: "0" (the whole stream) or "$" (what comes)
    group_start: str = "0"


class RedisSubscription(Subscription):
    def __init__(
        self, broker: RedisBroker, topic: str, group: str, options: SubscribeOptions | None
    ) -> None:
        super().__init__(topic, group, options)
        self._broker = broker
        self._keys = broker.keys
        self._settings = broker.settings
        self.member = new_member_id()
        self._owned: dict[int, _Owned] = {}
        self._partition_count = 0
        self._fetch_count = min(FETCH_BATCH, self.options.max_in_flight)
        self._coordinator: asyncio.Task[None] | None = None
        self._acker: asyncio.Task[None] | None = None
        self._acks: dict[int, list[bytes]] = {}
        self._ack_wanted = asyncio.Event()
        self._ack_lock = asyncio.Lock()
        self._coordination = asyncio.Lock()
        self._waiting_for_leases = False
        self._draining = False
        #: set by _finish: the coordinator and acker loops stop on it even if a cancel is lost
        self._finishing = False
        # while Redis is away each loop says so once, not once per retry
        where = f"{topic}/{group}"
        self._heartbeats = Outage(log, f"{where}: heartbeats")
        self._reads = Outage(log, f"{where}: reads")
        self._acking = Outage(log, f"{where}: XACK")

    @property
    def assigned_partitions(self) -> list[int]:
        return sorted(self._owned)

    # --- Subscription hooks -------------------------------------------------------------------
    async def _start(self) -> None:
        self._partition_count = await self._broker.partition_count(self.topic)
        try:
            async with self._coordination:
                await self._rebalance()
        except UNAVAILABLE as exc:
            await asyncio.gather(*(self._stop(o, graceful=False) for o in self._owned.values()))
            self._owned.clear()
            raise BrokerUnavailableError(f"join {self.topic}/{self.group}: {exc}") from exc
        self._coordinator = asyncio.create_task(self._coordinate(), name=f"coord:{self.topic}")
        self._acker = asyncio.create_task(self._ack_loop(), name=f"ack:{self.topic}")

    async def _stop_fetching(self) -> None:
        # Wait for a rebalance in progress, then only renew our leases while the in-flight
        # deliveries drain (nobody may take those partitions yet). Leaving the membership now
        # lets the others plan without us.
        async with self._coordination:
            self._draining = True
        await asyncio.gather(*(self._stop(owned, graceful=True) for owned in self._owned.values()))
        with contextlib.suppress(*UNAVAILABLE):
            await self._release([], leave=True)

    async def _finish(self) -> None:
        # A cancel alone may not stop these loops: redis-py writes through asyncio.wait_for
        # (socket_timeout), which on 3.11 drops a cancel that lands in the loop turn the write
        # completes; the loop then goes on (the acker to wait for acks nobody sends) and
        # cancel_task waits for ever. So they also stop on a flag; waking the acker lets it see it.
        self._finishing = True
        self._ack_wanted.set()
        await cancel_task(self._coordinator)
        await cancel_task(self._acker)
        try:
            await self._flush_acks()
            await self._release(list(self._owned), leave=True)
        except UNAVAILABLE as exc:  # the leases lapse on their own; the entries stay pending
            log.warning("%s/%s: leaving the group failed: %s", self.topic, self.group, exc)
        self._owned.clear()

    async def _on_settled(self, record: Record) -> None:
        # Acks are batched: one XACK per stream for whatever settled since the last one.
        pending = self._acks.get(record.partition)
        if pending is None:
            self._acks[record.partition] = [record.position]
        else:
            pending.append(record.position)
        self._ack_wanted.set()

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        await self._broker.publish(topic, event)

    async def _redelivery_count(self, record: Record) -> int:
        """Write the next count into the group's pending entry (XCLAIM RETRYCOUNT), so a
        member that takes over after a crash sees how often the entry was delivered."""
        count = record.delivery_count + 1
        try:
            async with self._broker.deadline():
                await self._broker.client.xclaim(
                    self._keys.stream(self.topic, record.partition), self.group, self.member,
                    0, [record.position], retrycount=count, justid=True,
                )
        except UNAVAILABLE as exc:
            log.warning("%s/%s: cannot record delivery count: %s", self.topic, self.group, exc)
        return count

    # --- coordination -------------------------------------------------------------------------
    async def _coordinate(self) -> None:
        settings = self._settings
        while not self._finishing:
            fast = self._waiting_for_leases and not self._draining
            await asyncio.sleep(CLAIM_RETRY if fast else settings.heartbeat_interval)
            try:
                async with self._coordination:
                    if self._draining:
                        await self._renew()
                    else:
                        await self._rebalance()
                self._heartbeats.recovered()
            except asyncio.CancelledError:
                raise
            except UNAVAILABLE as exc:  # the leases tell whether we still own anything
                self._heartbeats.failed(exc)
            except Exception:  # nothing may kill the member; retry next tick
                log.exception("%s/%s: coordination failed; retrying", self.topic, self.group)

    async def _rebalance(self) -> None:
        """Heartbeat, then move to the assignment the live members imply: partition p
        belongs to members[p % n] of the sorted live members."""
        ttl_ms = int(self._settings.session_timeout * 1000)
        async with self._broker.deadline():
            raw = await self._broker.scripts.heartbeat(
                keys=[self._keys.members(self.topic, self.group)], args=[self.member, ttl_ms]
            )
        members = sorted({m.decode() for m in raw} | {self.member})
        index, count = members.index(self.member), len(members)
        mine = [p for p in range(self._partition_count) if p % count == index]
        leaving = sorted(set(self._owned) - set(mine))
        if leaving:
            await self._hand_over(leaving)
        started, codes = await self._claim(mine)
        self._waiting_for_leases = LEASE_HELD in codes
        for partition, code in zip(mine, codes, strict=True):
            if partition in self._owned and code != LEASE_RENEWED:
                # another member holds it, or it lapsed and may have moved in between:
                # what we hold of it is stale
                await self._lost(partition)
            if partition not in self._owned and code != LEASE_HELD:
                self._take(partition, started + self._settings.session_timeout)

    async def _renew(self) -> None:
        partitions = list(self._owned)
        _, codes = await self._claim(partitions)
        for partition, code in zip(partitions, codes, strict=True):
            if code != LEASE_RENEWED:
                await self._lost(partition)

    async def _claim(self, partitions: list[int]) -> tuple[float, list[int]]:
        """Take or renew leases (one code per partition); extends the ones we own."""
        started = asyncio.get_running_loop().time()
        if not partitions:
            return started, []
        ttl = self._settings.session_timeout
        async with self._broker.deadline():
            raw = await self._broker.scripts.claim(
                keys=[self._keys.lease(self.topic, self.group, p) for p in partitions],
                args=[self.member, int(ttl * 1000)],
            )
        codes = [int(code) for code in raw]
        for partition, code in zip(partitions, codes, strict=True):
            owned = self._owned.get(partition)
            if owned is not None and code == LEASE_RENEWED:
                owned.valid_until = started + ttl
        return started, codes

    def _take(self, partition: int, valid_until: float) -> None:
        owned = _Owned(self._keys.stream(self.topic, partition), valid_until)
        if self.options.start_from == "latest":
            owned.group_start = "$"
        self._owned[partition] = owned
        owned.task = asyncio.create_task(
            self._consume(partition, owned), name=f"fetch:{self.topic}[{partition}]"
        )
        log.debug("%s/%s: %s took partition %d", self.topic, self.group, self.member, partition)

    async def _hand_over(self, partitions: list[int]) -> None:
        """Rebalance: stop reading, drain what was handed out, ack it, release the leases.
        The next owner reclaims whatever is still pending."""
        await asyncio.gather(*(self._stop(self._owned[p], graceful=True) for p in partitions))
        await self._revoke(partitions, self._settings.session_timeout / 2)
        await self._flush_acks()
        for partition in partitions:
            del self._owned[partition]
        await self._release(partitions, leave=False)

    async def _lost(self, partition: int) -> None:
        """Our lease is gone (we were presumed dead): stop at once and forget the partition."""
        log.warning("%s/%s: lease on partition %d lost", self.topic, self.group, partition)
        owned = self._owned.pop(partition)
        await self._stop(owned, graceful=False)
        await self._revoke([partition], 0)

    async def _release(self, partitions: list[int], *, leave: bool) -> None:
        members = self._keys.members(self.topic, self.group) if leave else ""
        leases = [self._keys.lease(self.topic, self.group, p) for p in partitions]
        async with self._broker.deadline():
            await self._broker.scripts.release(keys=[members, *leases], args=[self.member])

    async def _stop(self, owned: _Owned, *, graceful: bool) -> None:
        """Stop a partition's fetcher. Gracefully, a Redis call in progress is let finish
        (within ``block`` seconds), so no entry lands in our PEL after we release the lease."""
        owned.stopping = True
        task = owned.task
        if task is None or task.done():
            return
        if graceful and owned.in_call:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
            if task.done():
                return
        await cancel_task(task)

    # --- fetching -----------------------------------------------------------------------------
    async def _consume(self, partition: int, owned: _Owned) -> None:
        """Reclaim what the group left pending on this stream, then read new entries."""
        while not owned.stopping:
            try:
                if owned.reclaim_from is not None:
                    await self._ensure_group(owned)
                    await self._reclaim(partition, owned)
                    await self._forget_idle_consumers(owned)
                await self._read(partition, owned)
                self._reads.recovered()
            except asyncio.CancelledError:
                raise
            except ResponseError as exc:
                if "NOGROUP" in str(exc):  # the stream was deleted under us: start over
                    owned.reclaim_from = "0-0"
                    owned.group_start = "0"  # all of the new stream came after we joined
                log.warning("%s/%s[%d]: %s", self.topic, self.group, partition, exc)
                await asyncio.sleep(RETRY_DELAY)
            except UNAVAILABLE as exc:
                self._reads.failed(f"partition {partition}: {exc}")
                await asyncio.sleep(RETRY_DELAY)

    async def _ensure_group(self, owned: _Owned) -> None:
        try:
            async with self._broker.deadline():
                await self._broker.client.xgroup_create(
                    owned.stream, self.group, id=owned.group_start, mkstream=True
                )
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _reclaim(self, partition: int, owned: _Owned) -> None:
        """Claim every pending entry of the group on this stream (a lease guarantees the
        previous owner is gone or has handed over) and deliver them in stream order."""
        client = self._broker.client
        while owned.reclaim_from is not None and not owned.stopping:
            start = owned.reclaim_from
            owned.in_call = True
            try:
                async with self._broker.deadline():
                    cursor, entries, *_ = await client.xautoclaim(
                        owned.stream, self.group, self.member, 0, start, count=self._fetch_count
                    )
                    counts: dict[bytes, int] = {}
                    if entries:
                        pending: list[dict[str, Any]] = await client.xpending_range(
                            owned.stream, self.group, entries[0][0], entries[-1][0],
                            len(entries), consumername=self.member,
                        )
                        counts = {p["message_id"]: p["times_delivered"] for p in pending}
            finally:
                owned.in_call = False
            if owned.stopping:
                return  # what was just claimed stays pending for the next owner
            if entries:
                log.info("%s/%s[%d]: reclaimed %d pending entries", self.topic, self.group,
                         partition, len(entries))
            for entry_id, fields in entries:
                if fields is None:  # trimmed away while pending
                    continue
                record = self._record(partition, entry_id, fields, counts.get(entry_id, 2))
                await self._deliver(record, reclaimed=True)
            # a failure above retries from here: what was handed out is not claimed again
            owned.reclaim_from = None if cursor in (b"0-0", "0-0") else cursor

    async def _forget_idle_consumers(self, owned: _Owned) -> None:
        """Delete the group's consumers that hold nothing (old owners), keeping it tidy."""
        client = self._broker.client
        async with self._broker.deadline():
            for consumer in await client.xinfo_consumers(owned.stream, self.group):
                name = consumer["name"]
                if consumer["pending"] == 0 and name != self.member.encode():
                    await client.xgroup_delconsumer(owned.stream, self.group, name)

    async def _read(self, partition: int, owned: _Owned) -> None:
        client, loop = self._broker.client, asyncio.get_running_loop()
        block_ms = int(self._settings.block * 1000)
        streams: Any = {owned.stream: ">"}
        while not owned.stopping:
            if loop.time() >= owned.valid_until:  # the lease may have lapsed: read nothing
                await asyncio.sleep(min(self._settings.block, CLAIM_RETRY))
                continue
            owned.in_call = True
            try:
                async with self._broker.deadline():
                    reply: Any = await client.xreadgroup(
                        self.group, self.member, streams, count=self._fetch_count, block=block_ms
                    )
            finally:
                owned.in_call = False
            if owned.stopping:
                return  # what was just read stays pending for the next owner
            for _, entries in reply:
                for entry_id, fields in entries:
                    await self._deliver(self._record(partition, entry_id, fields, 1))

    async def _deliver(self, record: Record, *, reclaimed: bool = False) -> None:
        """Hand a record to the engine; dead-lettering may need Redis, so retry until it
        works (a stop cancels us and the entry stays pending for the next owner)."""
        worn_out = reclaimed and record.delivery_count > self.options.max_deliveries
        if worn_out and record.event is not None:
            # delivered max_deliveries times and never settled: its handler keeps dying
            record.delivery_count -= 1
        while True:
            try:
                if worn_out and record.event is not None:
                    reason = f"delivered {record.delivery_count} times (max_deliveries)"
                    await self._dead_letter(record, reason)
                else:
                    await self._put(record)
                return
            except BrokerUnavailableError as exc:
                log.warning("%s/%s: dead-lettering failed: %s; retrying", self.topic,
                            self.group, exc)
                await asyncio.sleep(RETRY_DELAY)

    def _record(
        self, partition: int, entry_id: bytes, fields: dict[bytes, bytes], count: int
    ) -> Record:
        try:
            event = from_redis_fields(fields)
        except Exception as exc:  # whatever cannot become an event is dead-lettered
            raw = repr(sorted(fields.items())).encode()
            return Record(partition, entry_id, None, None, count, raw=raw, error=str(exc))
        return Record(partition, entry_id, event.partitionkey, event, count)

    # --- acknowledging ------------------------------------------------------------------------
    async def _ack_loop(self) -> None:
        while not self._finishing:
            await self._ack_wanted.wait()
            self._ack_wanted.clear()
            if self._finishing:
                return  # _finish flushes what is left
            try:
                await self._flush_acks()
                self._acking.recovered()
            except UNAVAILABLE as exc:
                self._acking.failed(exc)
                await asyncio.sleep(RETRY_DELAY)
                self._ack_wanted.set()

    async def _flush_acks(self) -> None:
        """XACK everything settled so far, one command per stream, in one round trip."""
        async with self._ack_lock:
            acks, self._acks = self._acks, {}
            if not acks:
                return
            group, keys = self.group.encode(), self._keys
            payload = b"".join(
                pack_command(b"XACK", keys.stream(self.topic, partition).encode(), group, *ids)
                for partition, ids in acks.items()
            )
            try:
                await self._broker.send_packed(payload, len(acks))
            except BaseException:
                for partition, ids in acks.items():  # keep them for the next try
                    self._acks.setdefault(partition, []).extend(ids)
                raise
