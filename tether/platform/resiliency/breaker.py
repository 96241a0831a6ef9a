"""Circuit breakers: closed, open, half-open, as Dapr's (sony/gobreaker underneath).

- closed: every call goes through; each failure updates the counts and, if the ``trip``
  expression (CEL over ``requests``, ``totalSuccesses``, ``totalFailures``,
  ``consecutiveSuccesses``, ``consecutiveFailures``) is true, the breaker opens. With an
  ``interval`` the counts start again every interval; 0 keeps them until the state changes;
- open: calls fail at once with :class:`CircuitOpenError` until ``timeout`` has passed,
  then the breaker is half-open;
- half-open: at most ``maxRequests`` calls go through; that many successes in a row close
  it, one failure opens it again. Calls beyond the allowance fail with
  :class:`CircuitOpenError` (gobreaker's ErrTooManyRequests).

A call that started in an earlier generation (before a state change or an interval reset)
is not counted, as in gobreaker. One breaker's state lives in one sidecar process.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cel_expr_python import cel

from tether.platform.errors import TetherError
from tether.platform.resiliency.errors import ResiliencyError

log = logging.getLogger(__name__)

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"
DEFAULT_TRIP = "consecutiveFailures > 5"
COUNTS = ("requests", "totalSuccesses", "totalFailures", "consecutiveSuccesses",
          "consecutiveFailures")
_ENV = cel.NewEnv(variables={name: cel.Type.INT for name in COUNTS})
_BOOL_OR_DYN = (cel.Type.BOOL, cel.Type.DYN)


class TripExpressionError(TetherError, ValueError):
    """A ``trip`` expression that does not compile to a bool over the counts."""


class CircuitOpenError(ResiliencyError):
    """The breaker refused the call: open, or half-open with its allowance in use."""

    def __init__(self, name: str, state: str) -> None:
        what = "open" if state == OPEN else "half-open with too many requests"
        super().__init__(f"circuit breaker {name!r} is {what}")
        self.breaker = name
        self.state = state


class Trip:
    """A compiled ``trip`` expression; a failing evaluation does not trip (as Dapr)."""

    def __init__(self, expression: str) -> None:
        self.expression = expression
        try:
            self._program: Any = _ENV.compile(expression)
        except Exception as exc:  # the parser's or checker's message
            reason = str(exc).removeprefix("INVALID_ARGUMENT: ").removesuffix(
                " [INVALID_ARGUMENT]")
            raise TripExpressionError(f"{expression!r} is not valid: {reason}") from None
        if self._program.return_type() not in _BOOL_OR_DYN:
            kind = self._program.return_type().name()
            raise TripExpressionError(f"{expression!r} gives {kind}, not a bool")

    def __call__(self, counts: Counts) -> bool:
        try:
            value = self._program.eval(_ENV.Activation(counts.variables()))
        except Exception:
            return False
        return value.value() is True


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """One ``spec.policies.circuitBreakers`` entry (a template: each target gets its own
    :class:`CircuitBreaker`)."""

    name: str
    max_requests: int = 1
    interval: float = 0.0
    timeout: float = 60.0
    trip: Trip | None = None

    def new(self, instance: str, clock: Callable[[], float] = time.monotonic) -> CircuitBreaker:
        return CircuitBreaker(self, f"{self.name}-{instance}", clock)


@dataclass(slots=True)
class Counts:
    requests: int = 0
    total_successes: int = 0
    total_failures: int = 0
    consecutive_successes: int = 0
    consecutive_failures: int = 0

    def variables(self) -> dict[str, int]:
        return dict(zip(COUNTS, (self.requests, self.total_successes, self.total_failures,
                                 self.consecutive_successes, self.consecutive_failures),
                        strict=True))


class CircuitBreaker:
    """The state of one breaker. :meth:`before` admits a call (or raises) and returns its
    generation; :meth:`after` records how it went."""

    def __init__(
        self, policy: BreakerPolicy, name: str, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.policy = policy
        self.name = name
        self._clock = clock
        self._trip = policy.trip or Trip(DEFAULT_TRIP)
        self._max_requests = max(policy.max_requests, 1)
        self._timeout = policy.timeout if policy.timeout > 0 else 60.0
        self._state = CLOSED
        self._generation = 0
        self.counts = Counts()
        self._expiry = 0.0
        self._new_generation(self._clock())

    @property
    def state(self) -> str:
        self._current(self._clock())
        return self._state

    def open_for(self) -> float:
        """Seconds until an open breaker half-opens (0 when it is not open)."""
        now = self._clock()
        self._current(now)
        return max(self._expiry - now, 0.0) if self._state == OPEN else 0.0

    def before(self) -> int:
        now = self._clock()
        self._current(now)
        if self._state == OPEN or (
            self._state == HALF_OPEN and self.counts.requests >= self._max_requests
        ):
            raise CircuitOpenError(self.name, self._state)
        self.counts.requests += 1
        return self._generation

    def after(self, generation: int, success: bool) -> None:
        now = self._clock()
        self._current(now)
        if generation != self._generation:
            return  # started before a state change or a reset: not counted
        counts = self.counts
        if success:
            counts.total_successes += 1
            counts.consecutive_successes += 1
            counts.consecutive_failures = 0
            if self._state == HALF_OPEN and counts.consecutive_successes >= self._max_requests:
                self._set(CLOSED, now)
            return
        counts.total_failures += 1
        counts.consecutive_failures += 1
        counts.consecutive_successes = 0
        if self._state == HALF_OPEN or (self._state == CLOSED and self._trip(counts)):
            self._set(OPEN, now)

    def _current(self, now: float) -> None:
        if self._state == CLOSED:
            if self._expiry and self._expiry <= now:
                self._new_generation(now)
        elif self._state == OPEN and self._expiry <= now:
            self._set(HALF_OPEN, now)

    def _set(self, state: str, now: float) -> None:
        if state == self._state:
            return
        log.info("circuit breaker %r: %s -> %s", self.name, self._state, state)
        self._state = state
        self._new_generation(now)

    def _new_generation(self, now: float) -> None:
        self._generation += 1
        self.counts = Counts()
        if self._state == CLOSED:
            self._expiry = now + self.policy.interval if self.policy.interval > 0 else 0.0
        elif self._state == OPEN:
            self._expiry = now + self._timeout
        else:
            self._expiry = 0.0
