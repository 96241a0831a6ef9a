"""``bindings.cron``: an input source that emits one empty event per tick of ``schedule``.

The schedule is Dapr's (robfig/cron with optional seconds): ``@every <Go duration>``
(whole seconds, at least one), ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily``
``@midnight`` ``@hourly``, 5-field cron (minute first) or 6-field cron (seconds first),
optionally prefixed with ``CRON_TZ=<IANA zone>`` (or ``TZ=``). Tether also reads a
``timeZone`` metadata field; without either the machine's local zone is used, as daprd
does. Cron expressions are croniter's; the grammar lives in
:mod:`tether.platform.components.schedule`, which the Jobs API shares.

Ticks are computed against the wall clock. A tick whose emit took past the following ticks
does not make them fire in a burst: the missed ones are skipped (one warning) and the
schedule resumes at the next tick after now. Each event carries Dapr's metadata
``timeZone`` and ``readTimeUTC`` and no data; a cron has no consumer group, so the source
is exclusive (one reader per binding across replicas).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Callable

from tether.platform.bindings.binding import Binding, Emit, InputMessage
from tether.platform.components import Component, metadata
from tether.platform.components.schedule import (  # the grammar the Jobs API shares
    Schedule,
    local_zone,
    zone_named,
)

log = logging.getLogger(__name__)

#: the longest single sleep: a wall clock set forward or back is noticed within this
MAX_SLEEP = 30.0
#: Dapr's ``timeZone`` value for the machine's own zone (Go's ``time.Local.String()``)
LOCAL = "Local"


def go_time_utc(ns: int) -> str:
    """A UTC time as Go's ``Time.String()`` prints it (Dapr's ``readTimeUTC``):
    ``2024-05-01 12:30:00.123456789 +0000 UTC``, trailing zeros of the fraction dropped."""
    seconds, part = divmod(ns, 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    decimals = f"{part:09d}".rstrip("0")
    return f"{stamp}{'.' + decimals if decimals else ''} +0000 UTC"


def _wall_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class CronSource:
    """The input side: sleeps until each tick and emits it."""

    exclusive = True

    def __init__(self, name: str, schedule: Schedule,
                 now: Callable[[], datetime.datetime] = _wall_now) -> None:
        self.name = name
        self.schedule = schedule
        self._now = now

    async def _sleep_until(self, tick: datetime.datetime) -> None:
        """Sleep until the wall clock reaches ``tick``, in slices, so a clock that was set
        meanwhile moves the wake-up with it."""
        while True:
            remaining = (tick - self._now()).total_seconds()
            if remaining <= 0:
                return
            await asyncio.sleep(min(remaining, MAX_SLEEP))

    async def run(self, emit: Emit) -> None:
        schedule = self.schedule
        tick = schedule.next_after(self._now())
        while True:
            await self._sleep_until(tick)
            await emit(InputMessage(data=b"", metadata={
                "timeZone": schedule.zone_name, "readTimeUTC": go_time_utc(time.time_ns())}))
            now = self._now()
            following, skipped = schedule.following(tick, now)
            if skipped:
                log.warning("cron binding %s: the tick of %s was emitted at %s, past the "
                            "next ones of %r; skipped them, next tick at %s", self.name,
                            tick.isoformat(), now.isoformat(), schedule.text,
                            following.isoformat())
            tick = following

    async def close(self) -> None:
        pass  # nothing held: run() owns no connection


def build(component: Component) -> Binding:
    text = metadata.required(component, "schedule", "e.g. @every 15m or 0 30 * * * *")
    zone_name = metadata.text(component, "timeZone")
    zone = zone_named(zone_name, "timeZone") if zone_name else local_zone()
    schedule = Schedule.parse(text, zone, zone_name or LOCAL)
    return Binding(name=component.name, type=component.type,
                   input=CronSource(component.name, schedule))
