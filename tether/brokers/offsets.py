"""Contiguous offset tracking for log-structured partitions (Kafka, embedded, memory).

Deliveries settle out of order (keys run concurrently), but a partition's committed offset
can only move past a record once it and everything before it settled. This tracker gives the
next offset that is safe to commit.
"""

from __future__ import annotations

import collections


class OffsetTracker:
    """Offsets of one partition, registered in fetch order, settled in any order."""

    __slots__ = ("_done", "_next", "_pending")

    def __init__(self, start: int) -> None:
        self._pending: collections.deque[int] = collections.deque()
        self._done: set[int] = set()
        self._next = start  # next offset after the highest registered

    def register(self, offset: int) -> None:
        self._pending.append(offset)
        self._next = offset + 1

    def settle(self, offset: int) -> None:
        self._done.add(offset)
        pending, done = self._pending, self._done
        while pending and pending[0] in done:
            done.discard(pending.popleft())

    @property
    def commit_point(self) -> int:
        """The offset to commit: the first unsettled one, or one past the last registered."""
        return self._pending[0] if self._pending else self._next

    @property
    def outstanding(self) -> int:
        return len(self._pending)
