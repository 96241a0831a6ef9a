"""``lock.redis``: ``SET key owner NX PX`` to lock, a Lua script to unlock.

Both steps are atomic on the server: SET NX takes the key only when nobody holds it, and
the script compares the holder and deletes in one step, so an owner whose lock expired and
was taken by someone else cannot delete the new holder's lock. Expiry is Redis's own TTL.
The client is the component's (``RedisSettings.client()``): a blocking pool, so calls past its
size wait for a connection.
"""

from __future__ import annotations

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tether.platform.lock.store import LockStore, LockStoreError, UnlockStatus

# 0: deleted; -1: no such key (or expired); -2: held by another owner
_UNLOCK = """
local holder = redis.call('GET', KEYS[1])
if not holder then return -1 end
if holder ~= ARGV[1] then return -2 end
redis.call('DEL', KEYS[1])
return 0
"""
_STATUS = {
    0: UnlockStatus.SUCCESS,
    -1: UnlockStatus.LOCK_DOES_NOT_EXIST,
    -2: UnlockStatus.LOCK_BELONGS_TO_OTHERS,
}


class RedisLockStore(LockStore):
    def __init__(self, client: aioredis.Redis, address: str) -> None:
        self._client = client
        self._address = address
        self._unlock = client.register_script(_UNLOCK)

    async def start(self) -> None:
        try:
            await self._client.ping()
        except RedisError as exc:
            raise LockStoreError(f"cannot reach Redis at {self._address}: {exc}") from exc

    async def try_lock(self, key: str, owner: str, expiry_seconds: int) -> bool:
        try:
            taken = await self._client.set(key, owner, nx=True, px=expiry_seconds * 1000)
        except RedisError as exc:
            raise LockStoreError(f"redis: {exc}") from exc
        return bool(taken)

    async def unlock(self, key: str, owner: str) -> UnlockStatus:
        try:
            reply = await self._unlock(keys=[key], args=[owner])
        except RedisError as exc:
            raise LockStoreError(f"redis: {exc}") from exc
        return _STATUS.get(int(reply), UnlockStatus.INTERNAL_ERROR)

    async def close(self) -> None:
        await self._client.aclose()
