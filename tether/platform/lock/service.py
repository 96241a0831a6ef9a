"""The lock block's operations for any front end: Dapr's TryLock and Unlock over the app's
lock stores (docs/lock.md).

Dapr checks, in order: expiry (TryLock only), that any lock store exists, resourceId,
lockOwner, then the store name. A store failure is a 500 (ERR_TRY_LOCK / ERR_UNLOCK), as
in Dapr.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from tether.platform import errors
from tether.platform.blocks import BlockContext
from tether.platform.components.keys import InvalidKeyError
from tether.platform.errors import ApiError
from tether.platform.lock.keys import lock_key
from tether.platform.lock.registry import NamedLockStore, lock_stores
from tether.platform.lock.store import LockStoreError, UnlockStatus

log = logging.getLogger(__name__)


class LockService:
    """The app's lock stores, opened and closed with the sidecar."""

    def __init__(self, stores: Mapping[str, NamedLockStore]) -> None:
        self.stores = dict(stores)

    @classmethod
    def from_context(cls, context: BlockContext) -> LockService:
        """The service over the app's ``lock.*`` components (none is fine: calls then get
        Dapr's ERR_LOCK_STORE_NOT_CONFIGURED); BlockConfigError names a bad component."""
        return cls(lock_stores(context.components, context.app_id))

    async def start(self) -> None:
        """Start every store; LockStoreError naming the one that cannot start."""
        for named in self.stores.values():
            try:
                await named.store.start()
            except LockStoreError as exc:
                raise LockStoreError(f"lock store {named.name!r}: {exc}") from exc

    async def close(self) -> None:
        for named in self.stores.values():
            try:
                await named.store.close()
            except Exception:  # one store failing to close must not keep others open
                log.exception("closing lock store %r failed", named.name)

    async def try_lock(
        self, store: str, resource_id: str, owner: str, expiry_seconds: int
    ) -> bool:
        """Take ``resource_id`` for ``owner``; False when someone else holds it."""
        if expiry_seconds <= 0:
            raise ApiError(
                400, errors.MALFORMED_REQUEST,
                f"ExpiryInSeconds is not positive in lock store {store}",
            )
        named = self._store(store, resource_id, owner)
        try:
            key = lock_key(named.prefix, resource_id)
            return await named.store.try_lock(key, owner, expiry_seconds)
        except (InvalidKeyError, LockStoreError) as exc:
            raise ApiError(500, errors.TRY_LOCK, f"failed to try acquiring lock: {exc}") from exc

    async def unlock(self, store: str, resource_id: str, owner: str) -> UnlockStatus:
        """Release ``resource_id`` if ``owner`` holds it; otherwise say why not."""
        named = self._store(store, resource_id, owner)
        try:
            key = lock_key(named.prefix, resource_id)
            return await named.store.unlock(key, owner)
        except (InvalidKeyError, LockStoreError) as exc:
            raise ApiError(500, errors.UNLOCK, f"failed to release lock: {exc}") from exc

    def _store(self, name: str, resource_id: str, owner: str) -> NamedLockStore:
        if not self.stores:
            raise ApiError(500, errors.LOCK_STORE_NOT_CONFIGURED, "lock store is not configured")
        if not resource_id:
            raise ApiError(
                400, errors.MALFORMED_REQUEST, f"ResourceId is empty in lock store {name}"
            )
        if not owner:
            raise ApiError(
                400, errors.MALFORMED_REQUEST, f"LockOwner is empty in lock store {name}"
            )
        found = self.stores.get(name)
        if found is None:
            raise ApiError(400, errors.LOCK_STORE_NOT_FOUND, f"lock store {name} not found")
        return found
