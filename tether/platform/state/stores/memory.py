"""``state.in-memory``: a dict in the process, gone when it stops (tests, demos).

Every method runs to completion without awaiting, so on one event loop each call (and
each transaction) is atomic without a lock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from tether.platform.state.store import (
    FEATURE_ETAG,
    FEATURE_QUERY_API,
    FEATURE_TRANSACTIONAL,
    FEATURE_TTL,
    DeleteOperation,
    Operation,
    OutboxRecord,
    Query,
    QueryResult,
    SetOperation,
    StateItem,
    StateStore,
    StateStoreError,
)
from tether.platform.state.stores import query as q
from tether.platform.state.stores.common import (
    check_conflict,
    check_operations,
    etag_for,
    expiry,
    item_metadata,
)

#: sweep expired entries after this many writes, so unread expired items don't pile up
SWEEP_EVERY = 1000


@dataclass(slots=True)
class _Entry:
    value: bytes
    etag: str
    expires_at: float | None

    def live(self, now: float) -> bool:
        return self.expires_at is None or self.expires_at > now


class MemoryStateStore(StateStore):
    features = frozenset({FEATURE_ETAG, FEATURE_TRANSACTIONAL, FEATURE_TTL, FEATURE_QUERY_API})

    def __init__(self) -> None:
        self._items: dict[str, _Entry] = {}
        self._outbox: dict[str, OutboxRecord] = {}  # insertion order is publish order
        self._writes = 0
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StateStoreError("the in-memory state store is closed")

    def _live(self, key: str, now: float) -> _Entry | None:
        entry = self._items.get(key)
        return entry if entry is not None and entry.live(now) else None

    async def get(self, key: str) -> StateItem | None:
        self._check_open()
        entry = self._live(key, time.time())
        if entry is None:
            return None
        return StateItem(key, entry.value, entry.etag, item_metadata(entry.expires_at))

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        return [await self.get(key) for key in keys]

    async def set(self, op: SetOperation) -> str:
        self._check_open()
        check_operations([op])
        now = time.time()
        _check(op, self._live(op.key, now))
        return self._apply_set(op, etag_for(op), now)

    async def delete(self, op: DeleteOperation) -> None:
        self._check_open()
        check_operations([op])
        _check(op, self._live(op.key, time.time()))
        self._items.pop(op.key, None)

    async def transact(
        self, ops: Sequence[Operation], outbox: Sequence[OutboxRecord] = ()
    ) -> list[str | None]:
        self._check_open()
        check_operations(ops)
        now = time.time()
        etags = [etag_for(op) if isinstance(op, SetOperation) else None for op in ops]
        # check every operation against the state the earlier ones leave, then apply
        view: dict[str, _Entry | None] = {}
        for op, etag in zip(ops, etags, strict=True):
            current = view[op.key] if op.key in view else self._live(op.key, now)
            _check(op, current)
            view[op.key] = None if etag is None else _Entry(b"", etag, None)
        for op, etag in zip(ops, etags, strict=True):
            if isinstance(op, SetOperation) and etag is not None:
                self._apply_set(op, etag, now)
            else:
                self._items.pop(op.key, None)
        for record in outbox:
            self._outbox[record.id] = record
        return etags

    def _apply_set(self, op: SetOperation, etag: str, now: float) -> str:
        self._items[op.key] = _Entry(op.value, etag, expiry(op.ttl_seconds, None, now))
        self._writes += 1
        if self._writes % SWEEP_EVERY == 0:
            self._items = {k: e for k, e in self._items.items() if e.live(now)}
        return etag

    async def outbox_pending(self, limit: int) -> list[OutboxRecord]:
        self._check_open()
        return list(self._outbox.values())[:limit]

    async def outbox_done(self, ids: Sequence[str]) -> None:
        self._check_open()
        for record_id in ids:
            self._outbox.pop(record_id, None)

    async def query(self, query: Query) -> QueryResult:
        self._check_open()
        p = q.plan(query)
        now = time.time()
        items = [
            StateItem(key, e.value, e.etag, item_metadata(e.expires_at))
            for key, e in self._items.items()
            if key.startswith(p.key_prefix) and e.live(now)
        ]
        rows, token = q.run_in_memory(p, items)
        return QueryResult(rows, token)

    async def close(self) -> None:
        self._closed = True


def _check(op: Operation, current: _Entry | None) -> None:
    check_conflict(op, None if current is None else current.etag)
