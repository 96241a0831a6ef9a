"""The outbox relay: publishes a state store's committed outbox records, then forgets them.

One mechanism serves every writer of outbox records: the state API's transactional outbox
and change feed (:class:`OutboxRelay`, records addressed to the app's pub/sub components)
and the workflow runtime (records addressed to its own broker, under a private marker).
A :class:`Relay` is told which records are its own to publish (``claims``) and how to
publish them (``publish``), and offers two ways in:

* ``written(ids)``: records this process just committed; the next pass publishes them at
  once, in the store's order, with every other due record;
* ``hand(records)``: the records themselves, published straight away without reading the
  store (concurrent hands go out together, one batch per topic). The workflow runtime uses
  it: re-reading a long outbox for every step would cost more than the step.

Either way a periodic pass (``relay_once``) publishes the claimed records that are older
than ``grace`` (their writer died before publishing them, or another sidecar's relay is
slower), and every record this process could not publish. A record is published at least
once: a relay that dies between publishing and :meth:`StateStore.outbox_done` leaves it
pending, and the next relay publishes it again; the event id stays the same, so
subscribers can drop repeats by id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta

from tether.brokers import BrokerError
from tether.platform.aio import Grouped, cancel_task
from tether.platform.events import CloudEvent, InvalidCloudEventError, utc_now
from tether.platform.events.json_format import from_json
from tether.platform.pubsub import PubSubRegistry
from tether.platform.state.store import OutboxRecord, StateStore, StateStoreError

log = logging.getLogger(__name__)

DEFAULT_BATCH = 200
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_FOREIGN_GRACE = 5.0
MAX_RETRY_DELAY = 10.0
#: a record whose pub/sub name starts with this belongs to a relay of the runtime itself
#: (the workflow runtime's), not to a pub/sub component: see :func:`private_marker`
PRIVATE_PREFIX = "tether-"

#: publishes one topic's events: ``(pubsub, topic, events)``
Publish = Callable[[str, str, list[CloudEvent]], Awaitable[None]]


def private_marker(owner: str) -> str:
    """The pub/sub name under which a runtime relay (``owner``) keeps its records, so that
    the state API's relays, sharing the store, leave them alone without a warning."""
    return PRIVATE_PREFIX + owner


class Relay:
    """Publishes the pending outbox records of ``store`` that ``claims`` accepts."""

    def __init__(
        self,
        name: str,
        store: StateStore,
        publish: Publish,
        claims: Callable[[str], bool],
        *,
        batch: int = DEFAULT_BATCH,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        grace: float = DEFAULT_FOREIGN_GRACE,
    ) -> None:
        self.name = name
        self.store = store
        self.batch = batch
        self.poll_interval = poll_interval
        self.grace = timedelta(seconds=grace)
        self._publish_events = publish
        self._claims = claims
        #: written by this process: due at once (not yet published)
        self._own: set[str] = set()
        #: handed over and being published by the fast path: the passes leave them alone
        self._handed: set[str] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._fast: Grouped[list[OutboxRecord], None] = Grouped(self._publish_handed)
        #: events published by this relay (a figure for tests and logs)
        self.published = 0

    # --- ways in -------------------------------------------------------------------------
    def written(self, ids: Sequence[str]) -> None:
        """Records this process just committed: the next pass publishes them, no grace."""
        self._own.update(ids)
        self._wake.set()

    def hand(self, records: Sequence[OutboxRecord]) -> None:
        """Records this process just committed: publish them now, without a store read. If
        that fails they stay pending and the next pass publishes them."""
        if records:
            self._handed.update(r.id for r in records)
            task = asyncio.ensure_future(self._fast.submit(list(records)))
            task.add_done_callback(_quiet)

    async def send_now(self, records: Sequence[OutboxRecord]) -> None:
        """Publish committed records and forget them; the caller waits (and sees a failure)."""
        self._handed.update(r.id for r in records)
        await self._fast.submit(list(records))

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.name}")

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Stop; what this process wrote gets one last chance to go out first (the rest
        stays pending for the next relay)."""
        self._stopping = True
        task, self._task = self._task, None
        await cancel_task(task)
        try:
            async with asyncio.timeout(drain_timeout):
                await self._fast.drain()
                if self._own:
                    await self.relay_once(own_only=True)
        except (TimeoutError, StateStoreError, BrokerError, OSError) as exc:
            log.warning("outbox of %s: %d records left for the next relay (%s)",
                        self.name, len(self._own | self._handed), exc)
        await self._fast.close()

    async def _run(self) -> None:
        delay = self.poll_interval
        # a flag as well as the cancel: Redis clients use wait_for, which on Python 3.11 can
        # swallow a cancel arriving with its result, and close() would then wait forever
        while not self._stopping:
            # asyncio.timeout, not wait_for, for the same reason
            try:
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass
            self._wake.clear()
            try:
                while await self.relay_once() >= self.batch:
                    pass  # a full batch went out: more may be waiting
                delay = self.poll_interval
            except Exception as exc:  # any failure: the relay must outlive it
                # the records stay pending; back off and try again (order is kept)
                delay = min(max(delay * 2, self.poll_interval), MAX_RETRY_DELAY)
                log.warning("outbox of %s: publish failed, retrying in %.1fs: %s",
                            self.name, delay, exc)

    # --- publishing ------------------------------------------------------------------------
    async def relay_once(self, *, own_only: bool = False) -> int:
        """One pass: publish what is due now, in the store's order; returns how many
        records went out."""
        pending = await self.store.outbox_pending(self.batch)
        now = utc_now()
        due: list[OutboxRecord] = []
        for record in pending:
            if record.id in self._handed or not self._claims(record.pubsub):
                continue
            if record.id not in self._own:
                if own_only:
                    continue
                event = _decode(record)
                if event is not None and event.time is not None and now - event.time < self.grace:
                    continue
            due.append(record)
        await self._publish(due)
        return len(due)

    async def _publish_handed(self, groups: Sequence[list[OutboxRecord]]) -> list[None]:
        records = [r for group in groups for r in group]
        try:
            await self._publish(records)
        except Exception:
            # left pending: the next pass publishes them, with no grace
            self._own.update(r.id for r in records)
            self._wake.set()
            raise
        finally:
            self._handed.difference_update(r.id for r in records)
        return [None] * len(groups)

    async def _publish(self, records: Sequence[OutboxRecord]) -> None:
        """Publish records (one batch per pub/sub and topic: order holds within a topic, and
        so per key, which is all a broker keeps anyway), then forget them."""
        groups: dict[tuple[str, str], list[tuple[OutboxRecord, CloudEvent | None]]] = {}
        for record in records:
            groups.setdefault((record.pubsub, record.topic), []).append((record, _decode(record)))
        for (pubsub, topic), chunk in groups.items():
            events = [event for _, event in chunk if event is not None]
            if events:
                await self._publish_events(pubsub, topic, events)
            ids = [record.id for record, _ in chunk]
            await self.store.outbox_done(ids)
            self._own.difference_update(ids)
            self.published += len(events)


class OutboxRelay(Relay):
    """The state API's relay: publishes ``store``'s records addressed to the pub/sub
    components of ``pubsub``. Records for a pub/sub this sidecar does not have belong to
    another app sharing the store: they are left to its sidecars."""

    def __init__(
        self,
        name: str,
        store: StateStore,
        pubsub: PubSubRegistry,
        *,
        batch: int = DEFAULT_BATCH,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        foreign_grace: float = DEFAULT_FOREIGN_GRACE,
    ) -> None:
        super().__init__(name, store, self._to_component, self._has_component, batch=batch,
                         poll_interval=poll_interval, grace=foreign_grace)
        self.pubsub = pubsub
        self._unknown: set[str] = set()  # pub/sub names already warned about

    def _has_component(self, pubsub: str) -> bool:
        if pubsub in self.pubsub.names:
            return True
        if pubsub not in self._unknown and not pubsub.startswith(PRIVATE_PREFIX):
            self._unknown.add(pubsub)
            log.warning("outbox of %s: records for pub/sub %r, which this sidecar does not "
                        "have, are left to the sidecars that do", self.name, pubsub)
        return False

    async def _to_component(self, pubsub: str, topic: str, events: list[CloudEvent]) -> None:
        broker = await self.pubsub.broker(pubsub)
        if len(events) == 1:
            await broker.publish(topic, events[0])
        else:
            await broker.publish_batch(topic, events)


def _decode(record: OutboxRecord) -> CloudEvent | None:
    """The record's event; None (and a log line) for bytes that are no event: dropped."""
    try:
        return from_json(record.event)
    except InvalidCloudEventError as exc:
        log.error("outbox record %s is not a CloudEvent, dropped: %s", record.id, exc)
        return None


def _quiet(task: asyncio.Future[None]) -> None:
    # a failed hand-off is logged and retried by the next pass; nobody awaits it
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.warning("outbox: publishing handed records failed (the next pass retries): %s", exc)
