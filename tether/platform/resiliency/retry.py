"""Retry policies: which failures are retried, how often, and how long to wait between tries.

As Dapr (``dapr/kit/retry`` over cenkalti/backoff): ``constant`` waits ``duration`` every
time; ``exponential`` starts at 500 ms and grows by 1.5 per retry up to ``maxInterval``, each
wait randomized by +/-50 %, and gives up once 15 minutes have passed. ``maxRetries`` counts
retries, not attempts (0: one attempt; -1: no limit). ``matching`` lists the HTTP (100-599)
and gRPC (0-16) status codes to retry; a kind left unset retries every failing status.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from tether.platform.errors import TetherError

CONSTANT = "constant"
EXPONENTIAL = "exponential"
FOREVER = -1

#: cenkalti/backoff's defaults, which Dapr keeps for the exponential policy
INITIAL_INTERVAL = 0.5
MULTIPLIER = 1.5
RANDOMIZATION = 0.5
MAX_ELAPSED = 15 * 60.0

HTTP_CODES = (100, 599)
GRPC_CODES = (0, 16)


class CodeRangeError(TetherError, ValueError):
    """A ``matching`` list Dapr would refuse; the message says which part."""


@dataclass(frozen=True, slots=True)
class StatusCodes:
    """Code ranges to retry; None retries every code of that kind (the field was unset)."""

    ranges: tuple[tuple[int, int], ...] | None = None

    @classmethod
    def parse(cls, text: str | None, valid: tuple[int, int]) -> StatusCodes:
        """``"429,500-599"`` as Dapr reads it: empty parts skipped, each code in ``valid``."""
        if not text:
            return cls(None)
        ranges = []
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            pieces = part.split("-")
            if len(pieces) > 2:
                raise CodeRangeError(f"{part!r} has more than one '-'")
            try:
                start, end = int(pieces[0]), int(pieces[-1])
            except ValueError:
                raise CodeRangeError(f"{part!r} is not a code or a range like 500-599") from None
            for code in (start, end):
                if not valid[0] <= code <= valid[1]:
                    raise CodeRangeError(f"{code} in {part!r} is not in {valid[0]}-{valid[1]}")
            if end < start:
                raise CodeRangeError(f"{part!r} ends before it starts")
            ranges.append((start, end))
        return cls(tuple(ranges))

    def matches(self, code: int) -> bool:
        if self.ranges is None:
            return True
        return any(start <= code <= end for start, end in self.ranges)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """One ``spec.policies.retries`` entry."""

    name: str
    policy: str = CONSTANT
    duration: float = 5.0
    max_interval: float = 60.0
    max_retries: int = FOREVER
    http_codes: StatusCodes = StatusCodes()
    grpc_codes: StatusCodes = StatusCodes()

    def retries_left(self, retries_done: int) -> bool:
        return self.max_retries == FOREVER or retries_done < self.max_retries

    def delay(self, retry: int, rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); ``rand`` gives [0, 1)."""
        if self.policy == CONSTANT:
            return self.duration
        interval = INITIAL_INTERVAL
        for _ in range(max(retry, 1) - 1):  # cenkalti grows the interval, then caps it
            interval = min(interval * MULTIPLIER, self.max_interval)
            if interval >= self.max_interval:
                break
        spread = RANDOMIZATION * interval
        return interval - spread + rand() * 2 * spread

    def gives_up(self, elapsed: float, next_delay: float) -> bool:
        """The exponential policy's overall limit (cenkalti's MaxElapsedTime)."""
        return self.policy == EXPONENTIAL and elapsed + next_delay > MAX_ELAPSED

    def retries_status(self, status: int) -> bool:
        """Whether a failure with this HTTP or gRPC ``status`` may be retried."""
        if GRPC_CODES[0] <= status <= GRPC_CODES[1]:
            return self.grpc_codes.matches(status)
        if HTTP_CODES[0] <= status <= HTTP_CODES[1]:
            return self.http_codes.matches(status)
        return False
