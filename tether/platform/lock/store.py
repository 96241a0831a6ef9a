"""The contract every ``lock.*`` store implements.

Keys arrive already prefixed (see :mod:`.keys`), so a store never knows app ids. A lock is
not reentrant: a second ``try_lock`` by the same owner fails while the lock is held, as in
Dapr. An expired lock counts as absent everywhere.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod

from tether.platform.errors import TetherError


class LockStoreError(TetherError):
    """The store failed (connection lost, server error): a 500 at the API."""


class UnlockStatus(enum.IntEnum):
    """Dapr's ``UnlockResponse.Status`` numbers, as the HTTP API reports them."""

    SUCCESS = 0
    LOCK_DOES_NOT_EXIST = 1
    LOCK_BELONGS_TO_OTHERS = 2
    INTERNAL_ERROR = 3


class LockStore(ABC):
    """One lock component's storage."""

    async def start(self) -> None:
        """Open connections or files (default: nothing to open)."""
        return None

    @abstractmethod
    async def try_lock(self, key: str, owner: str, expiry_seconds: int) -> bool:
        """Take ``key`` for ``owner`` for ``expiry_seconds`` unless someone holds it."""

    @abstractmethod
    async def unlock(self, key: str, owner: str) -> UnlockStatus:
        """Release ``key`` if ``owner`` holds it; otherwise say why not."""

    async def close(self) -> None:
        """Release what :meth:`start` opened."""
        return None
