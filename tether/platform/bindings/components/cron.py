"""``bindings.cron``: an input source that emits one empty event per tick of ``schedule``.

The schedule is Dapr's (robfig/cron with optional seconds): ``@every <Go duration>``
(whole seconds, at least one), ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily``
``@midnight`` ``@hourly``, 5-field cron (minute first) or 6-field cron (seconds first),
optionally prefixed with ``CRON_TZ=<IANA zone>`` (or ``TZ=``). Tether also reads a
``timeZone`` metadata field; without either the machine's local zone is used, as daprd
does. Cron expressions are croniter's.

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
import os
import time
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no types

from tether.platform.bindings.binding import Binding, Emit, InputMessage
from tether.platform.components import Component, metadata

log = logging.getLogger(__name__)

#: robfig/cron's descriptors, as 6-field (seconds first) expressions
DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *",
    "@annually": "0 0 0 1 1 *",
    "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0",
    "@daily": "0 0 0 * * *",
    "@midnight": "0 0 0 * * *",
    "@hourly": "0 0 * * * *",
}
#: the longest single sleep: a wall clock set forward or back is noticed within this
MAX_SLEEP = 30.0
#: Dapr's ``timeZone`` value for the machine's own zone (Go's ``time.Local.String()``)
LOCAL = "Local"


def local_zone() -> datetime.tzinfo:
    """The machine's zone with its rules (DST included): ``$TZ``, else /etc/localtime, else
    UTC, which is how Go picks ``time.Local``."""
    name = os.environ.get("TZ", "").removeprefix(":")
    try:
        if name:
            return zoneinfo.ZoneInfo(name)
        if Path("/etc/localtime").exists():
            with open("/etc/localtime", "rb") as file:
                return zoneinfo.ZoneInfo.from_file(file, key="localtime")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    return datetime.UTC


def _zone(name: str, field: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise metadata.MetadataError(field, f"time zone {name!r} is not an IANA zone like "
                                            "Europe/Paris") from None


@dataclass(frozen=True, slots=True)
class Schedule:
    """When ticks fall: every ``every`` seconds, or on a cron ``expression``, in ``zone``."""

    text: str
    zone: datetime.tzinfo
    zone_name: str
    every: int | None = None
    expression: str | None = None
    seconds_first: bool = False

    @classmethod
    def parse(cls, text: str, zone: datetime.tzinfo, zone_name: str) -> Schedule:
        """Raises MetadataError naming ``schedule`` (or ``timeZone``)."""
        spec = text.strip()
        head, _, rest = spec.partition(" ")
        if head.startswith(("CRON_TZ=", "TZ=")):
            zone_name = head.partition("=")[2]
            zone = _zone(zone_name, "schedule")
            spec = rest.strip()
        if spec.startswith("@every"):
            value = spec.removeprefix("@every").strip()
            try:
                seconds = metadata.parse_duration(value)
            except metadata.DurationError as exc:
                raise metadata.MetadataError("schedule", f"{text!r}: {exc}") from None
            # robfig/cron: whole seconds, at least one
            return cls(text, zone, zone_name, every=max(1, int(seconds)))
        if spec.startswith("@"):
            if spec not in DESCRIPTORS:
                raise metadata.MetadataError(
                    "schedule", f"{text!r} is not @every <duration> or one of "
                                f"{', '.join(DESCRIPTORS)}")
            spec = DESCRIPTORS[spec]
        fields = spec.split()
        if len(fields) not in (5, 6):
            raise metadata.MetadataError(
                "schedule", f"{text!r} has {len(fields)} fields; a cron schedule has 5 "
                            "(minute hour day-of-month month day-of-week) or 6 (seconds first)")
        seconds_first = len(fields) == 6
        expression = " ".join(fields)
        if not croniter.is_valid(expression, second_at_beginning=seconds_first):
            raise metadata.MetadataError("schedule", f"{text!r} is not a valid cron schedule")
        return cls(text, zone, zone_name, expression=expression, seconds_first=seconds_first)

    def next_after(self, moment: datetime.datetime) -> datetime.datetime:
        """The first tick strictly after ``moment`` (an aware datetime)."""
        if self.every is not None:
            # on a grid of whole seconds, as robfig's constant-delay schedule
            base = moment.replace(microsecond=0)
            return base + datetime.timedelta(seconds=self.every)
        local = moment.astimezone(self.zone)
        tick: datetime.datetime = croniter(
            self.expression, local, second_at_beginning=self.seconds_first
        ).get_next(datetime.datetime)
        return tick

    def following(self, tick: datetime.datetime,
                  now: datetime.datetime) -> tuple[datetime.datetime, bool]:
        """The tick after ``tick`` that is still ahead of ``now``, and whether ticks between
        them were skipped (an emit that took longer than the interval)."""
        if self.every is not None:
            step = datetime.timedelta(seconds=self.every)
            following = tick + step
            if following > now:
                return following, False
            missed = (now - tick) // step
            return tick + step * (missed + 1), True
        following = self.next_after(tick)
        if following > now:
            return following, False
        return self.next_after(now), True


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
    zone = _zone(zone_name, "timeZone") if zone_name else local_zone()
    schedule = Schedule.parse(text, zone, zone_name or LOCAL)
    return Binding(name=component.name, type=component.type,
                   input=CronSource(component.name, schedule))
