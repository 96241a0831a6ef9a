"""When an actor's timer or reminder fires: Dapr's ``dueTime``, ``period`` and ``ttl``.

Dapr takes each in several spellings (docs: actors timers and reminders):

- ``dueTime``: a Go duration (``1m30s``), an ISO 8601 duration (``PT1M30S``) or an RFC 3339
  time (``2026-01-01T10:00:00Z``); empty is now;
- ``period``: a Go or ISO 8601 duration, or ISO 8601 with repetitions (``R5/PT10S``: five
  times); empty fires once;
- ``ttl``: a Go or ISO 8601 duration (from the first due time) or an RFC 3339 time, after
  which it fires no more.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from tether.platform.components.metadata import DurationError, parse_duration
from tether.platform.errors import TetherError
from tether.platform.events import parse_time
from tether.platform.events.event import InvalidCloudEventError

_ISO = re.compile(
    r"P(?:(?P<years>\d+)Y)?(?:(?P<months>\d+)M)?(?:(?P<weeks>\d+)W)?(?:(?P<days>\d+)D)?"
    r"(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?"
)
_ISO_SECONDS = {"years": 365 * 86400, "months": 30 * 86400, "weeks": 7 * 86400,
                "days": 86400, "hours": 3600, "minutes": 60, "seconds": 1}
_REPEATS = re.compile(r"R(\d+)/(.+)")
#: a period shorter than this would make a reminder a busy loop
MIN_PERIOD = 0.001


class ScheduleFormatError(TetherError, ValueError):
    """A dueTime, period or ttl Dapr would not read; the message says which."""


def _duration(text: str, field: str) -> float:
    value = text.strip()
    iso = _ISO.fullmatch(value)
    if iso is not None and value != "P" and not value.endswith("T"):
        return sum(float(v) * _ISO_SECONDS[k] for k, v in iso.groupdict().items() if v)
    try:
        return parse_duration(value)
    except DurationError:
        raise ScheduleFormatError(
            f"{field} {text!r} is not a duration (1m30s, PT1M30S) or a time (RFC 3339)"
        ) from None


def _time_or_duration(text: str, field: str, now: datetime) -> datetime:
    value = text.strip()
    if not value:
        return now
    if "T" in value and not value.startswith("P"):
        try:
            return parse_time(value).astimezone(UTC)
        except InvalidCloudEventError:
            raise ScheduleFormatError(f"{field} {text!r} is not an RFC 3339 time") from None
    return now + timedelta(seconds=_duration(value, field))


@dataclass(frozen=True, slots=True)
class Schedule:
    """The first due time, the period (None: once), how many fires in all (None: no
    limit) and when it expires (None: never)."""

    due: datetime
    period: float | None = None
    repeats: int | None = None
    expires: datetime | None = None

    @classmethod
    def parse(cls, due_time: str = "", period: str = "", ttl: str = "",
              now: datetime | None = None) -> Schedule:
        now = now or datetime.now(UTC)
        due = _time_or_duration(due_time, "dueTime", now)
        every: float | None = None
        repeats: int | None = None
        if period.strip():
            text = period.strip()
            counted = _REPEATS.fullmatch(text)
            if counted is not None:
                repeats = int(counted.group(1))
                text = counted.group(2)
                if repeats < 1:
                    raise ScheduleFormatError(f"period {period!r}: repetitions must be >= 1")
            every = _duration(text, "period")
            if every < MIN_PERIOD:
                raise ScheduleFormatError(f"period {period!r} is too short")
        else:
            repeats = 1
        expires = _time_or_duration(ttl, "ttl", due) if ttl.strip() else None
        if expires is not None and expires < due:
            raise ScheduleFormatError(f"ttl {ttl!r} ends before the first due time")
        return cls(due, every, repeats, expires)

    def after(self, fired: datetime, fires_done: int) -> datetime | None:
        """The next due time after a fire at ``fired`` (the ``fires_done``-th); None when
        it is over (no period, repetitions used up, or past its ttl)."""
        if self.period is None or (self.repeats is not None and fires_done >= self.repeats):
            return None
        following = fired + timedelta(seconds=self.period)
        if self.expires is not None and following > self.expires:
            return None
        return following


__all__ = ["MIN_PERIOD", "Schedule", "ScheduleFormatError"]

