"""When a delayed publish is due: ``deliverAfter`` (a duration) or ``deliverAt`` (a time).

Durations are Go's (``90s``, ``1m30s``, ``2h``, ``500ms``, ``1.5h``; units ns, us, µs, ms, s,
m, h) or a plain number of seconds (``30``, ``2.5``), as Dapr users write them in component
metadata. Times are RFC 3339 with an offset (``2026-11-24T21:00:00Z``,
``...T22:00:00.5+01:00``): a time without an offset would depend on the sidecar's zone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta

from tether.platform.components import metadata
from tether.platform.components.metadata import DurationError
from tether.platform.errors import TetherError

DELIVER_AFTER = "deliverAfter"
DELIVER_AT = "deliverAt"
#: the furthest a publish may be delayed; held events live in the scheduler's memory until
#: due, so years-long delays are a mistake rather than a plan (and would overflow datetime)
MAX_DELAY = timedelta(days=3650)

_RFC3339 = re.compile(  # ASCII digits: \d also matches other scripts' digits
    r"(\d{4}-\d{2}-\d{2})[Tt ](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})", re.ASCII
)


class DeliveryTimeError(TetherError, ValueError):
    """A deliverAfter/deliverAt value that cannot be used; the message names it."""


def parse_duration(text: str) -> timedelta:
    """A non-negative Go duration or plain seconds; raises DeliveryTimeError."""
    try:
        seconds = metadata.parse_duration(text)
    except DurationError as exc:
        raise DeliveryTimeError(f"deliverAfter {exc}") from None
    if seconds > MAX_DELAY.total_seconds():
        raise DeliveryTimeError(f"deliverAfter {text!r} is longer than {MAX_DELAY.days} days")
    return timedelta(seconds=seconds)


def parse_time(text: str) -> datetime:
    """An RFC 3339 time with an offset, as an aware datetime; raises DeliveryTimeError."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise DeliveryTimeError(
            f"deliverAt {text!r} is not an RFC 3339 time with an offset "
            "(e.g. 2026-11-24T21:00:00Z)"
        )
    day, clock, fraction, offset = match.groups()
    # Python reads at most 6 fractional digits; RFC 3339 allows any number
    fraction = (fraction or "")[:7]
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{day}T{clock}{fraction}{offset}")
    except ValueError as exc:  # 2026-02-30, 25:00:00, +24:00 ...
        raise DeliveryTimeError(f"deliverAt {text!r} is not a valid time: {exc}") from None


def due_time(metadata: Mapping[str, str], now: datetime | None = None) -> datetime | None:
    """The time a publish with this metadata is due, or None for an ordinary publish.

    A due time at or before ``now`` is returned as it is: the caller publishes it at once.
    """
    after, at = metadata.get(DELIVER_AFTER), metadata.get(DELIVER_AT)
    if after is not None and at is not None:
        raise DeliveryTimeError(
            f"give deliverAfter ({after!r}) or deliverAt ({at!r}), not both"
        )
    now = now or datetime.now(UTC)
    if after is not None:
        return now + parse_duration(after)
    if at is not None:
        when = parse_time(at)
        if when - now > MAX_DELAY:
            raise DeliveryTimeError(f"deliverAt {at!r} is more than {MAX_DELAY.days} days away")
        return when
    return None


def due_from(
    deliver_after: timedelta | float | None,
    deliver_at: datetime | None,
    now: datetime | None = None,
) -> datetime | None:
    """The SDK's form: a timedelta or seconds, or an aware datetime; raises ValueError."""
    if deliver_after is not None and deliver_at is not None:
        raise DeliveryTimeError("give deliver_after or deliver_at, not both")
    now = now or datetime.now(UTC)
    if deliver_after is not None:
        if isinstance(deliver_after, timedelta):
            delay = deliver_after
        elif math.isfinite(float(deliver_after)):
            delay = timedelta(seconds=min(float(deliver_after), MAX_DELAY.total_seconds() + 1))
        else:
            raise DeliveryTimeError(f"deliver_after {deliver_after!r} is not a number of seconds")
        if delay < timedelta(0):
            raise DeliveryTimeError(f"deliver_after {deliver_after!r} is negative")
        if delay > MAX_DELAY:
            raise DeliveryTimeError(f"deliver_after is longer than {MAX_DELAY.days} days")
        return now + delay
    if deliver_at is not None:
        if deliver_at.tzinfo is None:
            raise DeliveryTimeError("deliver_at must be an aware datetime (give a tzinfo)")
        if deliver_at - now > MAX_DELAY:
            raise DeliveryTimeError(f"deliver_at is more than {MAX_DELAY.days} days away")
        return deliver_at
    return None
