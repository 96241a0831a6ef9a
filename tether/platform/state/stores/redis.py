"""``state.redis``: each item is a Redis hash ``{data, etag[, exp]}`` under its own key.

Every write (a single set or delete, or a whole transaction with its outbox records) is
one Lua script, which Redis runs atomically: it first checks every ETag against the state
the earlier operations leave, and only when all pass applies them and appends the outbox
records, so a conflict in any operation applies nothing. TTLs are Redis key expiries
(``PEXPIREAT`` from the server's clock); Redis never returns an expired key, even before
its background sweep removes it.

The outbox is a sorted set (publish order) plus a hash (the records), both under
``tether||outbox||<component>``. Plain Redis has no RediSearch here, so there is no query
API (QueryNotSupportedError).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from tether.platform.state.store import (
    FEATURE_ETAG,
    FEATURE_TRANSACTIONAL,
    FEATURE_TTL,
    ETagMismatchError,
    Operation,
    OutboxRecord,
    SetOperation,
    StateItem,
    StateStore,
    StateStoreError,
)
from tether.platform.state.stores.common import (
    check_operations,
    etag_for,
    is_key,
    item_metadata,
)

# KEYS: the operations' keys, then the outbox's sorted set, hash and counter.
# ARGV: op count, then per op (kind, etag, first_write, value, ttl seconds, new etag),
# then per outbox record (id, payload). Returns 0, or the 1-based index of the conflict.
_TRANSACT = """
local n = tonumber(ARGV[1])
local view = {}
for i = 1, n do
  local key, base = KEYS[i], 1 + (i - 1) * 6
  local kind, etag, first = ARGV[base + 1], ARGV[base + 2], ARGV[base + 3]
  if view[key] == nil then
    view[key] = redis.call('HGET', key, 'etag')
  end
  if etag ~= '' then
    if view[key] ~= etag then return i end
  elseif first == '1' and kind == 's' and view[key] then
    return i
  end
  if kind == 's' then view[key] = ARGV[base + 6] else view[key] = false end
end
local now = nil
for i = 1, n do
  local key, base = KEYS[i], 1 + (i - 1) * 6
  redis.call('DEL', key)
  if ARGV[base + 1] == 's' then
    redis.call('HSET', key, 'data', ARGV[base + 4], 'etag', ARGV[base + 6])
    local ttl = tonumber(ARGV[base + 5])
    if ttl and ttl > 0 then
      if now == nil then
        local t = redis.call('TIME')
        now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
      end
      redis.call('HSET', key, 'exp', now + ttl * 1000)
      redis.call('PEXPIREAT', key, now + ttl * 1000)
    end
  end
end
local zset, hash, seq = KEYS[n + 1], KEYS[n + 2], KEYS[n + 3]
local first_record = 2 + n * 6
for j = first_record, #ARGV, 2 do
  local id = ARGV[j]
  if redis.call('HEXISTS', hash, id) == 0 then
    redis.call('ZADD', zset, redis.call('INCR', seq), id)
  end
  redis.call('HSET', hash, id, ARGV[j + 1])
end
return 0
"""


class RedisStateStore(StateStore):
    features = frozenset({FEATURE_ETAG, FEATURE_TRANSACTIONAL, FEATURE_TTL})

    def __init__(self, client: aioredis.Redis, default_ttl: int | None, outbox_key: str
                 ) -> None:
        self._redis = client
        self._default_ttl = default_ttl
        self._outbox_keys = [f"{outbox_key}||order", f"{outbox_key}||records",
                             f"{outbox_key}||seq"]
        self._transact = client.register_script(_TRANSACT)

    @classmethod
    async def open(
        cls, client: aioredis.Redis, address: str, *, default_ttl: int | None, outbox_key: str
    ) -> RedisStateStore:
        """The store over ``client`` (components.metadata.RedisSettings.client(): a blocking
        pool), once Redis at ``address`` answers; StateStoreError if it does not."""
        try:
            await client.ping()
        except RedisError as exc:
            await client.aclose()
            raise StateStoreError(f"cannot reach Redis at {address}: {exc}") from exc
        return cls(client, default_ttl, outbox_key)

    async def get(self, key: str) -> StateItem | None:
        if not is_key(key):  # no such key can have been written
            return None
        # one HMGET, not a pipeline of one: a pipeline costs ~30 us more CPU per call
        try:
            row = cast(list[bytes | None], await self._redis.hmget(key, ["data", "etag", "exp"]))
        except RedisError as exc:
            raise StateStoreError(f"Redis state store: {exc}") from exc
        return _item(key, row)

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        wanted = [key for key in keys if is_key(key)]  # no other key can have been written
        if not wanted:
            return [None] * len(keys)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for key in wanted:
                    pipe.hmget(key, "data", "etag", "exp")
                rows: list[list[bytes | None]] = await pipe.execute()
        except RedisError as exc:
            raise StateStoreError(f"Redis state store: {exc}") from exc
        found = {key: _item(key, row) for key, row in zip(wanted, rows, strict=True)}
        return [found.get(key) for key in keys]

    async def transact(
        self, ops: Sequence[Operation], outbox: Sequence[OutboxRecord] = ()
    ) -> list[str | None]:
        return await self._run(ops, outbox)

    async def _run(self, ops: Sequence[Operation], outbox: Sequence[OutboxRecord]
                   ) -> list[str | None]:
        # the script cannot undo what it wrote before an error, so nothing it could fail
        # on (a TTL out of range) may reach it
        check_operations(ops)
        args: list[Any] = [len(ops)]
        etags: list[str | None] = []
        for op in ops:
            if isinstance(op, SetOperation):
                etag = etag_for(op)
                ttl = self._default_ttl if op.ttl_seconds is None else op.ttl_seconds
                args += ["s", op.etag or "", "1" if op.first_write else "0", op.value,
                         "" if ttl is None or ttl == -1 else str(ttl), etag]
                etags.append(etag)
            else:
                args += ["d", op.etag or "", "1" if op.first_write else "0", b"", "", ""]
                etags.append(None)
        for record in outbox:
            args += [record.id, _encode(record)]
        keys = [op.key for op in ops] + self._outbox_keys
        try:
            conflict = int(await self._transact(keys=keys, args=args))
        except RedisError as exc:
            raise StateStoreError(f"Redis state store: {exc}") from exc
        if conflict:
            raise ETagMismatchError(ops[conflict - 1].key)
        return etags

    async def outbox_pending(self, limit: int) -> list[OutboxRecord]:
        order, records, _ = self._outbox_keys
        try:
            ids = cast(list[bytes], await self._redis.zrange(order, 0, limit - 1))
            if not ids:
                return []
            payloads = cast(list[bytes | None], await self._redis.hmget(records, ids))
        except RedisError as exc:
            raise StateStoreError(f"Redis state store: {exc}") from exc
        return [_decode(i.decode(), p) for i, p in zip(ids, payloads, strict=True) if p]

    async def outbox_done(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        order, records, _ = self._outbox_keys
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(order, *ids)
                pipe.hdel(records, *ids)
                await pipe.execute()
        except RedisError as exc:
            raise StateStoreError(f"Redis state store: {exc}") from exc

    async def close(self) -> None:
        await self._redis.aclose()


def _item(key: str, row: list[bytes | None]) -> StateItem | None:
    data, etag, exp = row
    if data is None or etag is None:
        return None
    expires_at = None if exp is None else int(exp) / 1000
    return StateItem(key, data, etag.decode(), item_metadata(expires_at))


def _encode(record: OutboxRecord) -> bytes:
    return json.dumps({"pubsub": record.pubsub, "topic": record.topic,
                       "event": base64.b64encode(record.event).decode()}).encode()


def _decode(record_id: str, payload: bytes) -> OutboxRecord:
    fields = json.loads(payload)
    return OutboxRecord(record_id, fields["pubsub"], fields["topic"],
                        base64.b64decode(fields["event"]))
