"""Dapr's schedule strings, shared by the cron input binding and the Jobs API.

Dapr's grammar (robfig/cron with optional seconds): ``@every <Go duration>`` (whole
seconds, at least one), ``@yearly`` ``@annually`` ``@monthly`` ``@weekly`` ``@daily``
``@midnight`` ``@hourly``, 5-field cron (minute first) or 6-field cron (seconds first),
optionally prefixed with ``CRON_TZ=<IANA zone>`` (or ``TZ=``). Cron expressions are
croniter's. A mistake raises :class:`~tether.platform.components.metadata.MetadataError`
naming ``schedule`` (or ``timeZone``): the binding reports it as a metadata field, the Jobs
API as a bad request.
"""

from __future__ import annotations

import datetime
import os
import zoneinfo
from dataclasses import dataclass
from pathlib import Path

from croniter import croniter  # type: ignore[import-untyped]  # croniter ships no types

from tether.platform.components import metadata

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


def zone_named(name: str, field: str) -> zoneinfo.ZoneInfo:
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
            zone = zone_named(zone_name, "schedule")
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
