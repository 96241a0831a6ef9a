"""Exponential backoff for redeliveries.

The delay is carried by ``Delivery.nack(delay)``: the broker holds the event back and only
its key waits behind it, so a long backoff never stalls other keys (see tether/brokers/base.py).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """``initial * multiplier ** (n - 1)`` seconds after the n-th failed delivery, capped."""

    initial: float = 1.0
    multiplier: float = 2.0
    maximum: float = 60.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.maximum < 0:
            raise ValueError("backoff delays must not be negative")
        if self.multiplier < 1:
            raise ValueError("backoff multiplier must be at least 1")

    def delay(self, delivery_count: int) -> float:
        """Seconds to wait before redelivering after delivery number ``delivery_count``."""
        exponent = max(delivery_count, 1) - 1
        try:
            value = self.initial * self.multiplier**exponent
        except OverflowError:  # a huge count: the cap applies anyway
            return self.maximum
        return min(value, self.maximum)
