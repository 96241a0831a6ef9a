"""RetryPolicy (Dapr's shape) and the delay before each retry.

Retries are durable: a failed attempt becomes a timer in history and a fresh TaskScheduled
when it fires, so a retry survives a crash like any other step."""

from __future__ import annotations

from datetime import datetime, timedelta


class RetryPolicy:
    """Retry a failed activity or child workflow.

    The delay before attempt n+1 is first_retry_interval * backoff_coefficient**(n-1),
    capped at max_retry_interval; max_number_of_attempts counts the first attempt; no retry
    is scheduled whose timer would fire later than retry_timeout after the first attempt."""

    def __init__(self, *, first_retry_interval: timedelta, max_number_of_attempts: int,
                 backoff_coefficient: float | None = 1.0,
                 max_retry_interval: timedelta | None = None,
                 retry_timeout: timedelta | None = None) -> None:
        if first_retry_interval < timedelta(0):
            raise ValueError("first_retry_interval must be >= 0")
        if max_number_of_attempts < 1:
            raise ValueError("max_number_of_attempts must be >= 1")
        if backoff_coefficient is not None and backoff_coefficient < 1:
            raise ValueError("backoff_coefficient must be >= 1")
        if max_retry_interval is not None and max_retry_interval < timedelta(0):
            raise ValueError("max_retry_interval must be >= 0")
        if retry_timeout is not None and retry_timeout < timedelta(0):
            raise ValueError("retry_timeout must be >= 0")
        self.first_retry_interval = first_retry_interval
        self.max_number_of_attempts = max_number_of_attempts
        self.backoff_coefficient = 1.0 if backoff_coefficient is None else backoff_coefficient
        self.max_retry_interval = max_retry_interval
        self.retry_timeout = retry_timeout

    def delay(self, attempt: int) -> timedelta:
        """The wait after failed attempt number `attempt` (1 = the first attempt)."""
        seconds = self.first_retry_interval.total_seconds() * (
            self.backoff_coefficient ** (attempt - 1))
        if self.max_retry_interval is not None:
            seconds = min(seconds, self.max_retry_interval.total_seconds())
        return timedelta(seconds=seconds)

    def next_retry_at(self, attempt: int, first_attempt_at: datetime,
                      now: datetime) -> datetime | None:
        """When to start attempt `attempt + 1`, or None if the policy gives up."""
        if attempt >= self.max_number_of_attempts:
            return None
        fire_at = now + self.delay(attempt)
        if self.retry_timeout is not None and fire_at > first_attempt_at + self.retry_timeout:
            return None
        return fire_at

    def __repr__(self) -> str:
        return (f"RetryPolicy(first_retry_interval={self.first_retry_interval!r}, "
                f"max_number_of_attempts={self.max_number_of_attempts}, "
                f"backoff_coefficient={self.backoff_coefficient}, "
                f"max_retry_interval={self.max_retry_interval!r}, "
                f"retry_timeout={self.retry_timeout!r})")
