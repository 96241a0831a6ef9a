"""What every backend's subscription shares: per-key gating, nack timers, dead-lettering,
backpressure and draining.

A backend subclass fetches records from its server and hands them to :meth:`Subscription._put`
in partition order; this class decides when each one is handed to the consumer and calls the
backend back when a record is settled (:meth:`_on_settled`), so that the backend can commit
or acknowledge it on the server.
"""

from __future__ import annotations

import abc
import asyncio
import collections
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Self

from tether.brokers.base import BrokerClosedError, SubscribeOptions
from tether.platform.events import CloudEvent, utc_now

log = logging.getLogger(__name__)

MALFORMED_EVENT_TYPE = "io.tether.broker.malformed"


@dataclass(slots=True, eq=False)
class Record:
    """One fetched message, decoded or not.

    ``position`` is the backend's own handle (a Kafka offset, a stream entry id). A record
    whose bytes could not be decoded has ``event`` None, the bytes in ``raw`` and the reason
    in ``error``; it is dead-lettered, never handed to the consumer.
    """

    partition: int
    position: Any
    key: str | None
    event: CloudEvent | None
    delivery_count: int = 1
    raw: bytes | None = None
    error: str | None = None
    # set by the subscription
    settled: bool = field(default=False)
    handed_out: bool = field(default=False)


class Delivery:
    """One event handed to a consumer; settle it exactly once with ack, nack or dead_letter."""

    __slots__ = ("_record", "_subscription")

    def __init__(self, subscription: Subscription, record: Record) -> None:
        self._subscription = subscription
        self._record = record

    @property
    def event(self) -> CloudEvent:
        assert self._record.event is not None
        return self._record.event

    @property
    def topic(self) -> str:
        return self._subscription.topic

    @property
    def partition(self) -> int:
        return self._record.partition

    @property
    def position(self) -> Any:
        return self._record.position

    @property
    def key(self) -> str | None:
        return self._record.key

    @property
    def delivery_count(self) -> int:
        """1 on the first delivery, 2 on the first redelivery, ..."""
        return self._record.delivery_count

    @property
    def settled(self) -> bool:
        return self._record.settled

    async def ack(self) -> None:
        """The event is handled: it will not be delivered to this group again."""
        await self._subscription._ack(self._record)

    async def nack(self, delay: float = 0.0) -> None:
        """Deliver again after ``delay`` seconds, or dead-letter once max_deliveries is hit."""
        await self._subscription._nack(self._record, delay)

    async def defer(self, delay: float) -> None:
        """Hand the event out again after ``delay`` seconds without settling it. Unlike
        nack this is not a failed delivery: the count stays, nothing is written to the
        server and it never dead-letters (the scheduler holds not-yet-due events this way).
        The key waits behind it, as with nack."""
        await self._subscription._defer(self._record, delay)

    async def dead_letter(self, reason: str) -> None:
        """Move the event to the dead-letter topic now and settle it."""
        await self._subscription._dead_letter(self._record, reason)

    def __repr__(self) -> str:
        return (
            f"Delivery(topic={self.topic!r}, partition={self.partition}, "
            f"position={self.position!r}, key={self.key!r}, count={self.delivery_count})"
        )


class Subscription(abc.ABC):
    """An async iterator of deliveries for one (topic, group) member.

    ``async with broker.subscribe(topic, group) as sub: async for delivery in sub: ...``
    """

    def __init__(self, topic: str, group: str, options: SubscribeOptions | None = None) -> None:
        self.topic = topic
        self.group = group
        self.options = options or SubscribeOptions()
        self._ready: collections.deque[Record] = collections.deque()
        self._ready_event = asyncio.Event()
        # (partition, key) -> the key's one record that is out (or due), and those behind it
        self._key_active: dict[tuple[int, str], Record] = {}
        self._key_queues: dict[tuple[int, str], collections.deque[Record]] = {}
        self._unsettled: set[Record] = set()  # every record put and not yet settled/dropped
        self._timers: dict[Record, asyncio.TimerHandle] = {}
        self._room = asyncio.Event()  # set whenever a record leaves _unsettled
        self._settle_event = asyncio.Event()
        self._started = False
        self._closed = False
        self._closing = False

    # --- backend hooks ----------------------------------------------------------------------
    @abc.abstractmethod
    async def _start(self) -> None:
        """Join the group and start fetching (call _put for each record)."""

    @abc.abstractmethod
    async def _stop_fetching(self) -> None:
        """Stop fetching; no _put after this returns."""

    @abc.abstractmethod
    async def _finish(self) -> None:
        """Commit what was settled and leave the group (after the drain)."""

    @abc.abstractmethod
    async def _on_settled(self, record: Record) -> None:
        """The record is done (acked or dead-lettered): commit or acknowledge it."""

    @abc.abstractmethod
    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        """Publish to the dead-letter topic (through the owning broker)."""

    async def _redelivery_count(self, record: Record) -> int:
        """The delivery count for the next delivery; backends that persist it override."""
        return record.delivery_count + 1

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        self._started = True
        await self._start()

    async def close(self, drain_timeout: float = 30.0) -> None:
        """Stop fetching, wait up to ``drain_timeout`` s for handed-out deliveries to be
        settled, commit and leave. Undelivered records stay on the broker for the group."""
        if self._closed or self._closing:
            return
        self._closing = True
        try:
            if self._started:
                await self._stop_fetching()
            self._drop_undelivered(lambda record: True)
            await self._wait_settled(lambda record: True, drain_timeout)
            if self._started:
                await self._finish()
        finally:
            self._closed = True
            self._ready_event.set()
            self._room.set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def in_flight(self) -> int:
        """Records fetched and not yet settled (handed out, waiting, or due for redelivery)."""
        return len(self._unsettled)

    # --- consuming --------------------------------------------------------------------------
    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> Delivery:
        while True:
            if self._ready:
                record = self._ready.popleft()
                record.handed_out = True
                return Delivery(self, record)
            if self._closing or self._closed:
                raise StopAsyncIteration
            if not self._started:
                raise BrokerClosedError("subscription not started: use 'async with' or start()")
            self._ready_event.clear()
            await self._ready_event.wait()

    # --- called by the backend --------------------------------------------------------------
    async def _put(self, record: Record) -> None:
        """Accept one fetched record (in partition order); waits while max_in_flight are out."""
        if record.event is None:
            await self._dead_letter_malformed(record)
            return
        while len(self._unsettled) >= self.options.max_in_flight and not self._closing:
            self._room.clear()
            await self._room.wait()
        if self._closing:
            return
        self._unsettled.add(record)
        if record.key is None or not self.options.gate_by_key:
            self._make_ready(record)
            return
        slot = (record.partition, record.key)
        if slot in self._key_active:
            self._key_queues.setdefault(slot, collections.deque()).append(record)
        else:
            self._key_active[slot] = record
            self._make_ready(record)

    async def _revoke(self, partitions: Iterable[int], timeout: float) -> None:
        """Partitions are leaving this member: drop what was not handed out and wait (up to
        ``timeout``) for what was, so the backend can commit before the new owner starts."""
        lost = set(partitions)
        self._drop_undelivered(lambda record: record.partition in lost)
        await self._wait_settled(lambda record: record.partition in lost, timeout)

    # --- settling ---------------------------------------------------------------------------
    async def _ack(self, record: Record) -> None:
        if self._settle(record):
            await self._on_settled(record)

    async def _nack(self, record: Record, delay: float) -> None:
        if record.settled or record in self._timers:
            return
        if record.delivery_count >= self.options.max_deliveries:
            reason = f"delivered {record.delivery_count} times (max_deliveries)"
            await self._dead_letter(record, reason)
            return
        if record not in self._unsettled:  # dropped by a revoke or close: the group keeps it
            return
        record.handed_out = False
        record.delivery_count = await self._redelivery_count(record)
        loop = asyncio.get_running_loop()
        self._timers[record] = loop.call_later(max(delay, 0.0), self._redeliver, record)

    async def _defer(self, record: Record, delay: float) -> None:
        if record.settled or record in self._timers or record not in self._unsettled:
            return  # settled, already waiting, or dropped by a revoke/close: nothing to hold
        record.handed_out = False
        loop = asyncio.get_running_loop()
        self._timers[record] = loop.call_later(max(delay, 0.0), self._redeliver, record)

    async def _dead_letter(self, record: Record, reason: str) -> None:
        if record.settled:
            return
        assert record.event is not None
        event = record.event.with_extensions(
            deadletterreason=reason,
            deadlettertopic=self.topic,
            deadletterdeliveries=record.delivery_count,
        )
        await self._publish_dead_letter(self.options.dead_letter_topic_of(self.topic), event)
        if self._settle(record):
            await self._on_settled(record)

    async def _dead_letter_malformed(self, record: Record) -> None:
        log.warning(
            "dead-lettering undecodable message on %s[%s]@%s: %s",
            self.topic, record.partition, record.position, record.error,
        )
        event = CloudEvent(
            type=MALFORMED_EVENT_TYPE,
            source=f"tether/broker/{self.group}",
            time=utc_now(),
            data=record.raw if record.raw is not None else b"",
            datacontenttype="application/octet-stream",
            extensions={
                "deadletterreason": record.error or "undecodable message",
                "deadlettertopic": self.topic,
            },
        )
        await self._publish_dead_letter(self.options.dead_letter_topic_of(self.topic), event)
        record.settled = True
        await self._on_settled(record)

    # --- internals --------------------------------------------------------------------------
    def _make_ready(self, record: Record) -> None:
        self._ready.append(record)
        self._ready_event.set()

    def _redeliver(self, record: Record) -> None:
        self._timers.pop(record, None)
        if record in self._unsettled and not self._closing:
            self._make_ready(record)

    def _settle(self, record: Record) -> bool:
        """Mark settled and release the key to its next record; False if already settled."""
        if record.settled:
            return False
        record.settled = True
        timer = self._timers.pop(record, None)
        if timer is not None:
            timer.cancel()
        if record in self._unsettled:
            self._unsettled.discard(record)
            self._release_key(record)
            self._notify_room()
        self._settle_event.set()
        return True

    def _release_key(self, record: Record) -> None:
        if record.key is None:
            return
        slot = (record.partition, record.key)
        if self._key_active.get(slot) is not record:
            return
        waiting = self._key_queues.get(slot)
        if waiting:
            successor = waiting.popleft()
            self._key_active[slot] = successor
            self._make_ready(successor)
        else:
            del self._key_active[slot]
            self._key_queues.pop(slot, None)

    def _drop_undelivered(self, match: Callable[[Record], bool]) -> None:
        """Forget records not currently with the consumer; the broker still has them."""
        dropped = {r for r in self._unsettled if match(r) and not r.handed_out}
        if not dropped:
            return
        for record in dropped:
            self._forget(record)
        self._ready = collections.deque(r for r in self._ready if r not in dropped)
        for slot, queue in list(self._key_queues.items()):
            kept = collections.deque(r for r in queue if r not in dropped)
            if len(kept) != len(queue):
                self._key_queues[slot] = kept
        self._notify_room()

    def _forget(self, record: Record) -> None:
        """Drop a record from every structure (it stays unacknowledged on the broker)."""
        self._unsettled.discard(record)
        timer = self._timers.pop(record, None)
        if timer is not None:
            timer.cancel()
        if record.key is not None:
            slot = (record.partition, record.key)
            if self._key_active.get(slot) is record:
                # the key's active record is gone: so are the ones behind it (same partition)
                del self._key_active[slot]
                self._key_queues.pop(slot, None)

    async def _wait_settled(self, match: Callable[[Record], bool], timeout: float) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while any(match(r) for r in self._unsettled):
            remaining = deadline - loop.time()
            if remaining <= 0:
                pending = sum(1 for r in self._unsettled if match(r))
                log.warning(
                    "%s/%s: %d deliveries still unsettled after %.1fs; they will be redelivered",
                    self.topic, self.group, pending, timeout,
                )
                for record in [r for r in self._unsettled if match(r)]:
                    self._forget(record)
                self._notify_room()
                return
            self._settle_event.clear()
            try:
                await asyncio.wait_for(self._settle_event.wait(), remaining)
            except TimeoutError:
                pass

    def _notify_room(self) -> None:
        self._room.set()
