"""A subscription member on Service Bus: session (or plain) receivers feeding the shared
engine, settling on the server, native dead letters and keyless retries handed back to
Service Bus (docs/brokers-servicebus.md)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.servicebus import ServiceBusReceivedMessage
from azure.servicebus.exceptions import OperationTimeoutError

from tether.brokers.base import SubscribeOptions
from tether.brokers.servicebus.clients import Receiver
from tether.brokers.servicebus.errors import SDK_ERRORS, SETTLE_ERRORS
from tether.brokers.servicebus.records import record_from
from tether.brokers.servicebus.retries import retry_copy
from tether.brokers.subscription import Record, Subscription
from tether.platform.events import CloudEvent

if TYPE_CHECKING:
    from tether.brokers.servicebus.broker import ServiceBusBroker

# the package's logger: one name for the whole backend, as before the split into modules
log = logging.getLogger(__name__)

#: messages asked for per receive call (also bounded by the room under max_in_flight)
RECEIVE_BATCH = 32
#: how long an idle session worker waits for a session to accept before asking again
ACCEPT_WAIT = 30.0
#: a failed receiver is reopened after this pause
RETRY_PAUSE = 1.0


@dataclass(eq=False)
class _Link:
    """One open receiver (a session, or the subscription's plain queue) and the records
    fetched through it that are not yet disposed of on the server."""

    receiver: Receiver
    held: set[Record] = field(default_factory=set)


class ServiceBusSubscription(Subscription):
    """Session (or plain) receivers feeding the shared engine; see docs/brokers-servicebus.md.

    Overrides of the base class: ``_dead_letter`` and ``_dead_letter_malformed`` use the
    native dead-letter queue instead of publishing; ``_nack`` hands keyless retries back to
    Service Bus (abandon, or a scheduled copy) instead of holding them in memory.
    """

    def __init__(
        self, broker: ServiceBusBroker, topic: str, group: str, options: SubscribeOptions | None
    ) -> None:
        super().__init__(topic, group, options)
        self._broker = broker
        self._settings = broker.settings
        self._messages: dict[Record, tuple[_Link, ServiceBusReceivedMessage]] = {}
        self._links: set[_Link] = set()
        self._workers: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._can_schedule = False

    # --- Subscription hooks -------------------------------------------------------------------
    async def _start(self) -> None:
        self._can_schedule = await self._broker.declare_group(self.topic, self.group, self.options)
        count = self._settings.max_sessions if self._settings.sessions else 1
        self._workers = [
            asyncio.create_task(self._work(), name=f"servicebus:{self.topic}/{self.group}:{n}")
            for n in range(count)
        ]

    async def _stop_fetching(self) -> None:
        self._stop.set()
        self._room.set()  # wake a worker waiting for room under max_in_flight
        # workers finish their current receive (at most idle_timeout) and leave links open
        await asyncio.gather(*self._workers, return_exceptions=True)

    async def _finish(self) -> None:
        # what was fetched and not settled goes back at once, rather than at lock expiry
        for record in list(self._messages):
            await self._dispose(record, "abandon")
        for link in list(self._links):
            await self._close_link(link)

    async def _on_settled(self, record: Record) -> None:
        await self._dispose(record, "complete")

    async def _publish_dead_letter(self, topic: str, event: CloudEvent) -> None:
        raise NotImplementedError("Service Bus dead letters are native: see _dead_letter")

    # --- settling overrides -----------------------------------------------------------------
    async def _dead_letter(self, record: Record, reason: str) -> None:
        if not self._settle(record):
            return
        await self._dispose(record, "dead-letter", reason, self._details(record))

    async def _dead_letter_malformed(self, record: Record) -> None:
        log.warning("dead-lettering undecodable message on %s/%s #%s: %s",
                    self.topic, self.group, record.position, record.error)
        record.settled = True
        details = self._details(record, malformed=True)
        await self._dispose(record, "dead-letter", record.error or "undecodable message", details)

    async def _nack(self, record: Record, delay: float) -> None:
        keep_in_memory = (
            record.key is not None  # the key's order: later events of it wait in memory
            or (delay > 0 and not self._can_schedule)
            or record.settled
            or record in self._timers
            or record not in self._unsettled
            or record.delivery_count >= self.options.max_deliveries  # the base dead-letters
        )
        if keep_in_memory:
            await super()._nack(record, delay)
            return
        self._settle(record)
        if delay <= 0:
            await self._dispose(record, "abandon")
            return
        if await self._schedule_copy(record, delay):
            await self._dispose(record, "complete")
        else:  # could not schedule: give it back now (redelivered without the delay)
            await self._dispose(record, "abandon")

    def _details(self, record: Record, *, malformed: bool = False) -> str:
        details: dict[str, Any] = {"topic": self.topic, "group": self.group,
                                   "deliveries": record.delivery_count}
        if malformed:
            details["malformed"] = True
        return json.dumps(details, separators=(",", ":"))

    async def _schedule_copy(self, record: Record, delay: float) -> bool:
        assert record.event is not None
        entry = self._messages.get(record)
        session_id = entry[1].session_id if entry else None
        copy = retry_copy(record.event, session_id, self.topic, self.group, record.delivery_count)
        when = datetime.now(UTC) + timedelta(seconds=delay)
        try:
            await self._broker.sender_for(self.topic).schedule_messages(copy, when)
        except SDK_ERRORS as exc:
            log.warning("%s/%s: could not schedule a retry of %s: %s",
                        self.topic, self.group, record.event.id, exc)
            return False
        return True

    async def _dispose(self, record: Record, action: str, reason: str = "",
                       description: str = "") -> None:
        """Settle ``record``'s message on the server; failures mean Service Bus redelivers
        it later (at-least-once), so they are logged, not raised at the consumer."""
        entry = self._messages.pop(record, None)
        if entry is None:
            return
        link, message = entry
        link.held.discard(record)
        receiver = link.receiver
        try:
            if action == "complete":
                await receiver.complete_message(message)
            elif action == "abandon":
                await receiver.abandon_message(message)
            else:
                await receiver.dead_letter_message(
                    message, reason=reason[:4096], error_description=description
                )
        except SETTLE_ERRORS as exc:
            log.warning("%s/%s: could not %s message #%s: %s; Service Bus will redeliver it",
                        self.topic, self.group, action, record.position, exc)

    # --- fetching ---------------------------------------------------------------------------
    async def _work(self) -> None:
        while not self._stop.is_set():
            link = await self._open_link()
            if link is None:
                continue
            try:
                await self._fetch(link)
            except Exception:  # a worker must outlive one bad receiver; log and reopen
                log.exception("%s/%s: receiver failed; reopening", self.topic, self.group)
                await self._close_link(link)
                await self._pause(RETRY_PAUSE)
                continue
            if not self._stop.is_set():
                await self._close_link(link)  # a drained session: let any member take it

    async def _open_link(self) -> _Link | None:
        """Open a receiver (accepting a session), unless stop comes first."""
        sessions = self._settings.sessions
        opening = asyncio.ensure_future(self._broker.clients.open_receiver(
            self.topic, self.group, session=sessions,
            max_wait_time=ACCEPT_WAIT if sessions else self._settings.idle_timeout,
        ))
        stopped = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({opening, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not opening.done():
            opening.cancel()
            opening.add_done_callback(_close_if_opened)
            return None
        try:
            receiver = opening.result()
        except OperationTimeoutError:
            return None  # no session has messages right now
        except SDK_ERRORS as exc:
            log.warning("%s/%s: cannot open a receiver: %s", self.topic, self.group, exc)
            await self._pause(RETRY_PAUSE)
            return None
        link = _Link(receiver)
        self._links.add(link)
        if self._stop.is_set():
            await self._close_link(link)
            return None
        return link

    async def _fetch(self, link: _Link) -> None:
        """Receive into the engine until stopped, or (sessions) until the session is drained
        and everything fetched from it is settled."""
        idle = self._settings.idle_timeout
        while not self._stop.is_set():
            await self._wait_for_room()
            room = self.options.max_in_flight - self.in_flight
            messages = await link.receiver.receive_messages(
                max_message_count=max(1, min(RECEIVE_BATCH, room)), max_wait_time=idle
            )
            if self._stop.is_set():
                for message in messages:
                    with contextlib.suppress(*SETTLE_ERRORS):
                        await link.receiver.abandon_message(message)
                return
            if not messages:
                if self._settings.sessions and not link.held:
                    return
                continue
            for message in messages:
                record = record_from(message)
                self._messages[record] = (link, message)
                link.held.add(record)
                await self._put(record)
                if not record.settled and record not in self._unsettled:
                    await self._dispose(record, "abandon")  # dropped by a close meanwhile

    async def _wait_for_room(self) -> None:
        while self.in_flight >= self.options.max_in_flight and not self._stop.is_set():
            self._room.clear()
            await self._room.wait()

    async def _close_link(self, link: _Link) -> None:
        self._links.discard(link)
        with contextlib.suppress(Exception):  # closing must not fail the caller
            await link.receiver.close()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)


_closing: set[asyncio.Future[None]] = set()  # keeps late closes alive until they finish


def _close_if_opened(task: asyncio.Future[Receiver]) -> None:
    """A receiver that finished opening after we stopped waiting for it: close it."""
    if task.cancelled() or task.exception() is not None:
        return
    closing = asyncio.ensure_future(task.result().close())
    _closing.add(closing)
    closing.add_done_callback(_closing.discard)
