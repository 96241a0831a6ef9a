"""Distributed lock: Dapr's lock API (``/v1.0-alpha1/lock``, ``/unlock``) over lock stores.

A store holds one owner per key until the owner unlocks or the expiry passes
(docs/lock.md). Stores: ``lock.redis`` and ``lock.sqlite`` (embedded, one machine).
:mod:`.service` holds the API's operations for any front end (the sidecar's HTTP API is
``tether.sidecar.lock``).
"""

from tether.platform.lock.keys import lock_key
from tether.platform.lock.store import LockStore, LockStoreError, UnlockStatus

__all__ = ["LockStore", "LockStoreError", "UnlockStatus", "lock_key"]
