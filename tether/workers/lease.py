"""A lease on the broker: one member of a group runs a job at a time, with no extra server.

Sources with no consumer group of their own (a cron schedule, an MQTT topic without a shared
subscription) must be read by one replica of an app, not by each. The lease is a *baton*: a
small event keyed by the lease's name on a topic of its own (one partition), consumed in
a group of its own. The broker hands a
key's events to one member (the owner of its partition); that member holds the baton by
deferring it (unacknowledged: it stays with the member, and goes to another one when the
member dies or leaves the group). While the baton keeps coming back to a member, that member
runs the job; when it stops coming back (a rebalance gave the partition away, the connection
broke) the member cancels the job.

Every member publishes a baton when it starts, so one always exists; a member that already
holds one acknowledges (drops) any other it is handed, so the extras disappear.

Guarantee: never two members running the job at once, as long as no event loop stalls for
longer than ``grace``. An old holder learns of its loss only when the baton fails to come
back (within ``renew + grace``, checked every ``renew / 2``), so a new holder waits that long
(:attr:`Lease.settle`) before it starts the job. A handover therefore leaves a gap of a few
seconds with no reader; a source keeps what arrives meanwhile (a cron tick in the gap is
skipped, as a tick during a restart is).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from tether.brokers import Broker, BrokerError, Delivery, SubscribeOptions
from tether.platform.aio import cancel_task
from tether.platform.events import CloudEvent

log = logging.getLogger(__name__)

BATON_TYPE = "io.tether.lease.baton"
#: how long a held baton is deferred before it comes back to its holder
DEFAULT_RENEW = 1.0
#: how late a baton may come back before its holder gives the lease up
DEFAULT_GRACE = 2.0


class Lease:
    """Runs ``job`` on this member while it holds lease ``name``; :meth:`run` until
    cancelled (cancelling it cancels the job too)."""

    def __init__(
        self,
        broker: Broker,
        topic: str,
        group: str,
        name: str,
        *,
        renew: float = DEFAULT_RENEW,
        grace: float = DEFAULT_GRACE,
    ) -> None:
        self.broker = broker
        self.topic = topic
        self.group = group
        self.name = name
        self.renew = renew
        self.grace = grace
        self._baton: str | None = None  # the id of the baton this member holds
        self._last_seen = 0.0
        self._job: asyncio.Task[None] | None = None
        #: times this member took the lease (for logs and tests)
        self.acquired = 0

    @property
    def settle(self) -> float:
        """How long a new holder waits before starting the job: the longest a previous
        holder may take to notice that it lost the baton."""
        return self.renew * 1.5 + self.grace

    @property
    def held(self) -> bool:
        return self._baton is not None

    async def run(self, job: Callable[[], Awaitable[None]]) -> None:
        await self.broker.create_topic(self.topic, 1)
        options = SubscribeOptions(gate_by_key=False, start_from="earliest",
                                   max_deliveries=2**31 - 1)
        subscription = self.broker.subscribe(self.topic, self.group, options)
        await subscription.start()
        watchdog = asyncio.create_task(self._watch(), name=f"lease-watch:{self.name}")
        try:
            await self.broker.publish(
                self.topic,
                CloudEvent(type=BATON_TYPE, source=f"tether/lease/{self.group}",
                           extensions={"partitionkey": self.name}),
            )
            async for delivery in subscription:
                await self._handle(delivery, job)
        finally:
            await cancel_task(watchdog)
            await self._step_down("stopping")
            with contextlib.suppress(BrokerError):
                await subscription.close(drain_timeout=0.5)

    async def _handle(self, delivery: Delivery, job: Callable[[], Awaitable[None]]) -> None:
        event = delivery.event
        if event.type != BATON_TYPE or event.partitionkey != self.name:
            await delivery.ack()  # not a baton of this lease: nothing to hold
            return
        if self._baton is not None and event.id != self._baton:
            await delivery.ack()  # an extra baton: one is enough
            return
        if self._baton is None:
            self._baton = event.id
            self.acquired += 1
            log.info("lease %r taken by this member; starting its job", self.name)
            self._job = asyncio.create_task(self._run_job(job), name=f"lease-job:{self.name}")
        self._last_seen = time.monotonic()
        await delivery.defer(self.renew)

    async def _run_job(self, job: Callable[[], Awaitable[None]]) -> None:
        await asyncio.sleep(self.settle)  # the previous holder has stopped by then
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("the job of lease %r failed", self.name)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self.renew / 2)
            if self._baton is not None and (
                time.monotonic() - self._last_seen > self.renew + self.grace
            ):
                await self._step_down("its baton did not come back (the group moved it)")

    async def _step_down(self, why: str) -> None:
        if self._baton is None:
            return
        self._baton = None
        job, self._job = self._job, None
        if job is not None:
            log.info("lease %r given up: %s", self.name, why)
            await cancel_task(job)
