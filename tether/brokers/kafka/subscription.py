"""One member of a Kafka consumer group, on top of the shared subscription engine.

Offsets: every fetched record is registered in its partition's :class:`OffsetTracker`; the
engine reports settled records back (:meth:`KafkaSubscription._on_settled`) and the tracker's
commit point (the first unsettled offset) is committed every ``commit_interval_ms`` when
something changed, when partitions are revoked (after draining what was handed out) and on
close. aiokafka calls the rebalance listener from its coordinator task, so the fetch loop is
stopped while partitions are revoked and restarted when they are assigned.

A member the coordinator no longer knows (the broker restarted, or the member was silent for
a session timeout) commits nothing: aiokafka would send its offsets as a standalone commit,
which an empty group accepts, and after a restart of a broker that keeps nothing (tansu's
memory engine) those offsets point into a topic that is gone, so the new one would be read
from past its start. What it settled is redelivered instead; the topic is created again if
the broker lost it, and the member re-joins from the group's committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import ConsumerStoppedError, KafkaError

from tether.brokers.base import BrokerError, SubscribeOptions
from tether.brokers.kafka.codec import from_kafka
from tether.brokers.kafka.errors import unavailable
from tether.brokers.offsets import OffsetTracker
from tether.brokers.outage import Outage
from tether.brokers.subscription import Record, Subscription
from tether.platform.aio import cancel_task
from tether.platform.events import CloudEvent, InvalidCloudEventError

if TYPE_CHECKING:
    from tether.brokers.kafka.broker import KafkaBroker

log = logging.getLogger(__name__)

RETRY = 1.0  # seconds between attempts after a failed fetch or dead-letter publish


@dataclass(slots=True)
class _Assigned:
    """One partition this member owns in the current generation."""

    tracker: OffsetTracker
    committed: int


@dataclass(slots=True, eq=False)
class _KafkaRecord(Record):
    #: the assignment the record was fetched under: a late ack after a rebalance must not
    #: settle an offset in a newer assignment of the same partition
    owner: _Assigned | None = None


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, subscription: KafkaSubscription) -> None:
        self._subscription = subscription

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._subscription._on_revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._subscription._on_assigned(assigned)


class KafkaSubscription(Subscription):
    """One member of a Kafka consumer group; see the module docstring for commits."""

    def __init__(
        self, broker: KafkaBroker, topic: str, group: str, options: SubscribeOptions | None
    ) -> None:
        super().__init__(topic, group, options)
        self._broker = broker
        self._consumer: AIOKafkaConsumer | None = None
        self._assigned: dict[int, _Assigned] = {}
        self._fetch_task: asyncio.Task[None] | None = None
        self._commit_task: asyncio.Task[None] | None = None
        self._commit_lock = asyncio.Lock()
        self._dirty = False  # something settled since the last commit
        self._fetching = False  # False once close() began: a rebalance must not restart it
        self._forgotten = False  # the coordinator forgot this member; the next join resets it
        name = f"{topic}/{group}"
        self._membership = Outage(log, f"{name}: group membership")
        self._fetches = Outage(log, f"{name}: fetching")
        self._commits = Outage(log, f"{name}: committing offsets")
        self._dead_letters = Outage(log, f"{name}: dead-lettering an undecodable record")

    @property
    def assigned_partitions(self) -> list[int]:
        return sorted(self._assigned)

    # --- Subscription hooks -------------------------------------------------------------------
    async def _start(self) -> None:
        broker, settings = self._broker, self._broker.settings
        await broker.ensure_topic(self.topic)
        consumer = AIOKafkaConsumer(
            **settings.client_options(),
            group_id=self.group,
            enable_auto_commit=False,
            # a new group (no committed offset) starts where the options say
            auto_offset_reset=self.options.start_from or "earliest",
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=settings.heartbeat_interval_ms,
            rebalance_timeout_ms=settings.rebalance_timeout,
            # deliveries are decoupled from fetching: a full max_in_flight window (long
            # handlers, long nack delays) is not a stuck consumer, so do not leave the group
            max_poll_interval_ms=2**31 - 1,
            fetch_max_wait_ms=settings.fetch_max_wait_ms,
            fetch_max_bytes=settings.fetch_max_bytes,
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            max_poll_records=settings.max_poll_records,
        )
        try:
            await asyncio.wait_for(consumer.start(), settings.connect_timeout_ms / 1000)
        except (KafkaError, OSError, TimeoutError) as exc:
            with contextlib.suppress(Exception):
                await consumer.stop()
            raise unavailable(f"cannot start a consumer for {self.topic!r}", exc) from exc
        self._consumer = consumer
        self._fetching = True
        # subscribing after start() lets the group join run in the background: a join can
        # take a whole session timeout (a dead member), which is not a connection failure
        consumer.subscribe([self.topic], listener=_Listener(self))
        self._commit_task = asyncio.create_task(self._commit_loop(), name=f"commit:{self.topic}")

    async def _stop_fetching(self) -> None:
        self._fetching = False
        await cancel_task(self._fetch_task)
        self._fetch_task = None

    async def _finish(self) -> None:
        await cancel_task(self._commit_task)
        self._commit_task = None
        try:
            await self._commit(set(self._assigned))
        finally:
            consumer, self._consumer = self._consumer, None
            self._assigned.clear()
            self._broker._forget(self)
            if consumer is not None:
                await self._stop_consumer(consumer)

    async def _stop_consumer(self, consumer: AIOKafkaConsumer) -> None:
        # aiokafka sends LeaveGroup only for generation > 0, but tansu numbers generations
        # from 0: without this a graceful stop looks like a crash to the group, which then
        # waits a whole session timeout before it rebalances (Kafka itself starts at 1)
        member_id, generation = _membership(consumer)
        with contextlib.suppress(KafkaError):
            await consumer.stop()
        if generation == 0 and member_id:
            await self._broker._leave_group(self.group, member_id)

    async def _on_settled(self, record: Record) -> None:
        assert isinstance(record, _KafkaRecord)
        owner = record.owner
        if owner is not None and self._assigned.get(record.partition) is owner:
            owner.tracker.settle(record.position)
            self._dirty = True

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        await self._broker._publish_dead_letter(topic, event)

    # --- rebalance (called from aiokafka's coordinator task) ----------------------------------
    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # the fetch loop may hold records of these partitions (or wait in _put with one):
        # stop it so nothing is handed out after the commit below
        await cancel_task(self._fetch_task)
        self._fetch_task = None
        partitions = {tp.partition for tp in revoked if tp.topic == self.topic}
        if not partitions:
            return
        if self._consumer is not None and not _is_member(self._consumer):
            await self._on_forgotten()
        await self._revoke(partitions, self._broker.settings.rebalance_timeout / 2000)
        try:
            await self._commit(partitions)
        finally:
            for partition in partitions:
                self._assigned.pop(partition, None)

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        timeout = self._broker.settings.request_timeout_ms / 1000
        forgotten, self._forgotten = self._forgotten, False
        for tp in assigned:
            if tp.topic != self.topic:
                continue
            try:
                position = await asyncio.wait_for(self._position(consumer, tp, forgotten),
                                                  timeout) if consumer is not None else None
            except (KafkaError, TimeoutError) as exc:  # the first fetched record sets it instead
                log.debug("%s/%s: no position for %s: %s", self.topic, self.group, tp, exc)
                position = None
            if position is None:
                self._assigned.pop(tp.partition, None)
                continue
            # "latest" is resolved only now: commit that position at the next tick, or a
            # member that stops before its first ack would skip, when back, what came since
            committed = -1 if self.options.start_from == "latest" else position
            self._assigned[tp.partition] = _Assigned(OffsetTracker(position), committed)
            self._dirty = self._dirty or committed != position
        self._membership.recovered()
        log.info("%s/%s: assigned partitions %s", self.topic, self.group, self.assigned_partitions)
        if self._fetching and self._fetch_task is None:
            self._fetch_task = asyncio.create_task(self._fetch_loop(), name=f"fetch:{self.topic}")

    async def _position(
        self, consumer: AIOKafkaConsumer, tp: TopicPartition, forgotten: bool
    ) -> int | None:
        """Where this member starts on ``tp``: the group's committed offset, else where
        the options say. But once the coordinator forgot the member, the group is not new:
        no committed offset means the broker lost it (tansu's memory engine on restart),
        and "latest" would skip what was published since, so the partition is read from
        its start."""
        if forgotten and self.options.start_from == "latest" \
                and await consumer.committed(tp) is None:
            await consumer.seek_to_beginning(tp)
        position: int | None = await consumer.position(tp)
        return position

    async def _on_forgotten(self) -> None:
        """The coordinator forgot this member: if the broker restarted it may have lost the
        topic too, so make sure it exists (with our partition count) before re-joining."""
        self._forgotten = True
        self._membership.failed("the coordinator no longer knows this member (the broker "
                                "restarted?); uncommitted offsets dropped, re-joining")
        self._broker._topics_lost()
        try:
            await self._broker.ensure_topic(self.topic)
        except BrokerError as exc:  # the join's metadata request or a publish creates it
            log.debug("%s/%s: re-creating the topic failed: %s", self.topic, self.group, exc)

    # --- fetching -----------------------------------------------------------------------------
    async def _fetch_loop(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        max_records = self._broker.settings.max_poll_records
        assigned, put = self._assigned, self._put
        while True:
            try:
                batches = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            except ConsumerStoppedError:
                return
            except Exception as exc:  # the fetch loop must outlive a hiccup: retry, do not die
                self._fetches.failed(exc)
                await asyncio.sleep(RETRY)
                continue
            self._fetches.recovered()
            for tp, messages in batches.items():
                partition = tp.partition
                owner = assigned.get(partition)
                if owner is None:
                    if tp not in consumer.assignment():  # revoked meanwhile: not ours to hand out
                        continue
                    # assigned without a known position: the first record gives it
                    owner = assigned[partition] = _Assigned(
                        OffsetTracker(messages[0].offset), messages[0].offset
                    )
                register = owner.tracker.register
                for message in messages:
                    register(message.offset)
                    record = _to_record(partition, message, owner)
                    try:
                        await put(record)
                    except Exception as exc:
                        await self._put_again(record, exc)

    async def _put_again(self, record: Record, exc: Exception) -> None:
        """Only an undecodable record can fail in _put (its dead-letter publish failed):
        retry it rather than skip it, which would stall the partition's commits."""
        while True:
            self._dead_letters.failed(
                f"{self.topic}[{record.partition}]@{record.position}: {exc!r}")
            await asyncio.sleep(RETRY)
            try:
                await self._put(record)
            except Exception as again:
                exc = again
                continue
            self._dead_letters.recovered()
            return

    # --- committing ---------------------------------------------------------------------------
    async def _commit_loop(self) -> None:
        interval = self._broker.settings.commit_interval_ms / 1000
        while True:
            await asyncio.sleep(interval)
            if self._dirty:
                self._dirty = False
                await self._commit(set(self._assigned))

    async def _commit(self, partitions: set[int]) -> None:
        """Commit the settled prefix of ``partitions`` that are still assigned; a failure
        (typically a rebalance in between) is logged: the records are redelivered instead.
        A member the coordinator forgot commits nothing (see the module docstring)."""
        consumer = self._consumer
        if consumer is None or not _is_member(consumer):
            return
        async with self._commit_lock:
            offsets: dict[TopicPartition, int] = {}
            owners: list[tuple[_Assigned, int]] = []
            for partition in partitions:
                owner = self._assigned.get(partition)
                if owner is not None and owner.tracker.commit_point != owner.committed:
                    point = owner.tracker.commit_point
                    offsets[TopicPartition(self.topic, partition)] = point
                    owners.append((owner, point))
            if not offsets:
                return
            try:
                # bounded: aiokafka retries retriable commit errors without end. Not
                # asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives with the
                # result, so the commit loop would outlive close() and hang it
                async with asyncio.timeout(self._broker.settings.request_timeout_ms / 1000):
                    await consumer.commit(offsets)
            except (KafkaError, TimeoutError) as exc:
                self._commits.failed(f"{offsets}: {type(exc).__name__}: {exc}")
                self._dirty = True
                forgotten = not _is_member(consumer)
            else:
                self._commits.recovered()
                log.debug("%s/%s: committed %s", self.topic, self.group, offsets)
                for owner, point in owners:
                    owner.committed = point
                return
        if forgotten:
            # the commit is how the member learnt it was forgotten (aiokafka resets the
            # membership on UnknownMemberId): the re-join must know it too, or a "latest"
            # group would skip what was published since the broker restarted
            await self._on_forgotten()


def _membership(consumer: AIOKafkaConsumer) -> tuple[str, int]:
    """(member id, generation) as aiokafka's coordinator holds them: ("", -1) outside a group
    (before the first join, and once the coordinator said it forgot the member)."""
    coordinator = getattr(consumer, "_coordinator", None)
    return getattr(coordinator, "member_id", ""), getattr(coordinator, "generation", -1)


def _is_member(consumer: AIOKafkaConsumer) -> bool:
    member_id, generation = _membership(consumer)
    return bool(member_id) and generation >= 0


def _to_record(partition: int, message: Any, owner: _Assigned) -> _KafkaRecord:
    raw_key = message.key
    key = raw_key.decode("utf-8", "replace") if raw_key is not None else None
    try:
        event = from_kafka(message.value, message.headers)
    except InvalidCloudEventError as exc:
        return _KafkaRecord(partition, message.offset, key, None, raw=message.value,
                            error=str(exc), owner=owner)
    return _KafkaRecord(partition, message.offset, key, event, owner=owner)
