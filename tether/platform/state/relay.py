"""The outbox relay: publishes a state store's committed outbox records, then forgets them.

One relay runs per state store per sidecar. A record is published at least once: a relay
that dies after publishing and before :meth:`StateStore.outbox_done` leaves the record
pending, and the next relay publishes it again. Several sidecars sharing a store may also
both see a record; to make that rare, a relay publishes the records its own sidecar wrote at
once and leaves other records alone until they are ``foreign_grace`` seconds old (their own
sidecar normally published them by then, or died). Subscribers must tolerate duplicates:
the event id stays the same, so they can drop repeats by id.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta

from tether.brokers import BrokerError
from tether.platform.events import CloudEvent, InvalidCloudEventError, utc_now
from tether.platform.events.json_format import from_json
from tether.platform.pubsub import PubSubRegistry
from tether.platform.state.store import OutboxRecord, StateStore, StateStoreError

log = logging.getLogger(__name__)

DEFAULT_BATCH = 200
DEFAULT_POLL_INTERVAL = 1.0
DEFAULT_FOREIGN_GRACE = 5.0
MAX_RETRY_DELAY = 10.0
#: records the workflow runtime writes for itself (runtime/names.py OUTBOX_MARKER_PREFIX);
#: spelled out here so the state layer does not import the workflow package
WORKFLOW_OUTBOX_PREFIX = "tether-workflow:"


class OutboxRelay:
    """Publishes ``store``'s pending outbox records through ``pubsub``'s brokers."""

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
        self.name = name
        self.store = store
        self.pubsub = pubsub
        self.batch = batch
        self.poll_interval = poll_interval
        self.foreign_grace = timedelta(seconds=foreign_grace)
        self._own: set[str] = set()
        self._unknown: set[str] = set()  # pub/sub names already warned about
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        #: records published by this relay (a figure for tests and logs)
        self.published = 0

    def written(self, ids: Sequence[str]) -> None:
        """Records this sidecar just committed: publish them now, without the grace."""
        self._own.update(ids)
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.name}")

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Stop; the records this sidecar wrote get one last chance to go out first."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        if self._own:
            try:
                await asyncio.wait_for(self.relay_once(own_only=True), drain_timeout)
            except (TimeoutError, StateStoreError, BrokerError, OSError) as exc:
                log.warning("outbox of %s: %d records left for the next relay (%s)",
                            self.name, len(self._own), exc)

    async def _run(self) -> None:
        delay = self.poll_interval
        while True:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that
            # arrives with the wake-up, and close() would then wait for this loop forever
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

    async def relay_once(self, *, own_only: bool = False) -> int:
        """Publish what is due now, in order; returns how many records went out."""
        pending = await self.store.outbox_pending(self.batch)
        now = utc_now()
        due: list[tuple[OutboxRecord, CloudEvent | None]] = []
        for record in pending:
            own = record.id in self._own
            if own_only and not own:
                continue
            event = _decode(record)
            if not own and event is not None and not self._old_enough(event, now):
                continue
            due.append((record, event))
        # one batch per topic; order holds within a topic (and so per key), which is all a
        # broker keeps anyway
        groups: dict[tuple[str, str], list[tuple[OutboxRecord, CloudEvent | None]]] = {}
        for record, event in due:
            groups.setdefault((record.pubsub, record.topic), []).append((record, event))
        handled = 0
        for chunk in groups.values():
            if await self._publish(chunk):
                handled += len(chunk)
        return handled

    def _old_enough(self, event: CloudEvent, now: datetime) -> bool:
        return event.time is None or now - event.time >= self.foreign_grace

    async def _publish(self, chunk: list[tuple[OutboxRecord, CloudEvent | None]]) -> bool:
        first = chunk[0][0]
        events = [event for _, event in chunk if event is not None]
        if events:
            if first.pubsub not in self.pubsub.names:
                # a record for a pub/sub this sidecar does not have: another app's; leave it
                # the workflow runtime's records are its own to publish: no warning for them
                workflow = first.pubsub.startswith(WORKFLOW_OUTBOX_PREFIX)
                if first.pubsub not in self._unknown and not workflow:
                    self._unknown.add(first.pubsub)
                    log.warning("outbox of %s: records for pub/sub %r, which this sidecar "
                                "does not have, are left to the sidecars that do",
                                self.name, first.pubsub)
                return False
            broker = await self.pubsub.broker(first.pubsub)
            if len(events) == 1:
                await broker.publish(first.topic, events[0])
            else:
                await broker.publish_batch(first.topic, events)
        ids = [record.id for record, _ in chunk]
        await self.store.outbox_done(ids)
        self._own.difference_update(ids)
        self.published += len(events)
        return True


def _decode(record: OutboxRecord) -> CloudEvent | None:
    """The record's event; None (and a log line) for bytes that are no event: dropped."""
    try:
        return from_json(record.event)
    except InvalidCloudEventError as exc:
        log.error("outbox record %s is not a CloudEvent, dropped: %s", record.id, exc)
        return None
