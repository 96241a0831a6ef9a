"""Instances in the state store: metadata, history chunks and worker registrations.

Per instance (keys in ``names.Names``):

* ``...||meta``: status, name, times, input/output, failure, custom status, parent,
  children, the number of history chunks and a version that grows with every write;
* ``...||history||<n>``: one chunk per execution step: the events it appended and the ids
  of the CloudEvents it consumed (so a redelivered event is dropped by id). A step appends
  one chunk and rewrites the small metadata, never the whole history; continue-as-new
  writes chunk 0 afresh and deletes the others.

Every step's write is one ``transact`` (metadata with its ETag, the new chunk, the outbox
records of the step's actions): an owner that lost the instance to another worker fails on
the ETag instead of overwriting it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from tether.platform.aio import Grouped
from tether.platform.state.store import (
    DeleteOperation,
    Operation,
    OutboxRecord,
    SetOperation,
    StateItem,
    StateStore,
)
from tether.platform.workflows.durable.names import Names
from tether.platform.workflows.errors import FailureDetails
from tether.platform.workflows.history import (
    HistoryEvent,
    ParentInstance,
    RuntimeStatus,
    dt_from_str,
    dt_to_str,
    history_from_list,
    history_to_list,
    utcnow,
)

#: event ids kept across a continue-as-new (late redeliveries of the previous generation)
CARRIED_IDS = 2000
JSON = "application/json"


def _dt(value: Any) -> datetime | None:
    return None if value is None else dt_from_str(str(value))


@dataclass(slots=True)
class InstanceMeta:
    instance_id: str
    name: str
    status: RuntimeStatus = RuntimeStatus.PENDING
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)
    input: str | None = None
    output: str | None = None
    failure: FailureDetails | None = None
    custom_status: str | None = None
    parent: ParentInstance | None = None
    scheduled_start: datetime | None = None
    children: list[str] = field(default_factory=list)
    chunks: int = 0
    version: int = 0
    #: the instance's W3C trace context (its start span's): what its steps' spans continue
    trace: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> bytes:
        data = {
            "instance_id": self.instance_id, "name": self.name, "status": self.status.value,
            "created_at": dt_to_str(self.created_at), "updated_at": dt_to_str(self.updated_at),
            "input": self.input, "output": self.output,
            "failure": self.failure.to_dict() if self.failure else None,
            "custom_status": self.custom_status,
            "parent": self.parent.to_dict() if self.parent else None,
            "scheduled_start": dt_to_str(self.scheduled_start) if self.scheduled_start
            else None,
            "children": self.children, "chunks": self.chunks, "version": self.version,
        }
        if self.trace:
            data["trace"] = self.trace
        return json.dumps(data, separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> InstanceMeta:
        d = json.loads(raw)
        return cls(
            instance_id=d["instance_id"], name=d["name"], status=RuntimeStatus(d["status"]),
            created_at=dt_from_str(d["created_at"]), updated_at=dt_from_str(d["updated_at"]),
            input=d.get("input"), output=d.get("output"),
            failure=FailureDetails.from_dict(d["failure"]) if d.get("failure") else None,
            custom_status=d.get("custom_status"),
            parent=ParentInstance.from_dict(d["parent"]) if d.get("parent") else None,
            scheduled_start=_dt(d.get("scheduled_start")),
            children=list(d.get("children") or []), chunks=int(d.get("chunks", 0)),
            version=int(d.get("version", 0)), trace=dict(d.get("trace") or {}),
        )


@dataclass(slots=True)
class Loaded:
    """An instance as stored: metadata (None: never written), its ETag, history, seen ids."""

    meta: InstanceMeta | None
    etag: str | None
    events: list[HistoryEvent]
    seen: set[str]
    #: the ids in stored order, so a continue-as-new can carry the most recent ones
    seen_order: list[str]


class InstanceStore:
    """The runtime's view of a state store."""

    def __init__(self, store: StateStore, names: Names) -> None:
        self.store = store
        self.names = names
        # concurrent steps share store calls (group commit)
        self._reads: Grouped[str, StateItem | None] = Grouped(self._read_many)
        self._writes: Grouped[tuple[list[Operation], list[OutboxRecord]], None] = \
            Grouped(self._write_many, max_group=200)

    async def _read_many(self, keys: Sequence[str]) -> list[StateItem | None]:
        return await self.store.bulk_get(list(keys))

    async def _write_many(self, group: Sequence[tuple[list[Operation], list[OutboxRecord]]]
                          ) -> list[BaseException | None]:
        if len(group) == 1:
            await self.store.transact(group[0][0], group[0][1])
            return [None]
        try:
            await self.store.transact([op for ops, _ in group for op in ops],
                                      [r for _, records in group for r in records])
            return [None] * len(group)
        except Exception:  # one of them conflicts (or the store failed): each on its own
            out: list[BaseException | None] = []
            for ops, records in group:
                try:
                    await self.store.transact(ops, records)
                    out.append(None)
                except Exception as exc:
                    out.append(exc)
            return out

    async def _transact(self, ops: list[Operation], outbox: Sequence[OutboxRecord]) -> None:
        """One instance's atomic write (grouped with others' into one transaction)."""
        await self._writes.submit((ops, list(outbox)))

    # --- reading -------------------------------------------------------------------------------
    async def get_meta(self, instance_id: str) -> tuple[InstanceMeta, str] | None:
        item = await self._reads.submit(self.names.meta_key(instance_id))
        if item is None:
            return None
        return InstanceMeta.from_json(item.value), item.etag

    async def load(self, instance_id: str) -> Loaded:
        found = await self.get_meta(instance_id)
        if found is None:
            return Loaded(None, None, [], set(), [])
        meta, etag = found
        events: list[HistoryEvent] = []
        order: list[str] = []
        if meta.chunks:
            keys = [self.names.chunk_key(instance_id, i) for i in range(meta.chunks)]
            for item in await self.store.bulk_get(keys):
                if item is None:  # cannot happen with transactional writes; be loud
                    raise RuntimeError(f"history chunk missing for instance {instance_id!r}")
                chunk = json.loads(item.value)
                events.extend(history_from_list(chunk["events"]))
                order.extend(chunk.get("ids", []))
        return Loaded(meta, etag, events, set(order), order)

    async def history(self, instance_id: str) -> list[HistoryEvent]:
        return (await self.load(instance_id)).events

    # --- writing a step ----------------------------------------------------------------------
    async def commit_step(self, meta: InstanceMeta, etag: str | None,
                          appended: Sequence[HistoryEvent], ids: Sequence[str], *,
                          reset: bool, outbox: Sequence[OutboxRecord]) -> InstanceMeta:
        """Write one step: the new chunk, the metadata (conditional on ``etag``; None: only
        if absent) and the outbox records, in one transaction. Returns the metadata written
        (ETagMismatchError if another writer got there first)."""
        iid = meta.instance_id
        ops: list[Operation] = []
        old_chunks = meta.chunks
        index = 0 if reset else old_chunks
        chunk = {"events": history_to_list(list(appended)), "ids": list(ids)}
        ops.append(SetOperation(self.names.chunk_key(iid, index),
                                json.dumps(chunk, separators=(",", ":")).encode(),
                                content_type=JSON))
        if reset:
            ops.extend(DeleteOperation(self.names.chunk_key(iid, i))
                       for i in range(1, old_chunks))
        written = replace(meta, chunks=index + 1, version=meta.version + 1, updated_at=utcnow())
        ops.append(self._meta_op(written, etag))
        await self._transact(ops, outbox)
        return written

    def _meta_op(self, meta: InstanceMeta, etag: str | None) -> SetOperation:
        return SetOperation(self.names.meta_key(meta.instance_id), meta.to_json(), etag=etag,
                            first_write=etag is None, content_type=JSON)

    async def create(self, meta: InstanceMeta, etag: str | None, old_chunks: int,
                     outbox: Sequence[OutboxRecord]) -> None:
        """A new instance (PENDING) with its start event in the outbox; ``etag`` replaces a
        finished instance of the same id (whose history chunks are deleted)."""
        ops: list[Operation] = [self._meta_op(meta, etag)]
        ops.extend(DeleteOperation(self.names.chunk_key(meta.instance_id, i))
                   for i in range(old_chunks))
        await self._transact(ops, outbox)

    async def delete(self, meta: InstanceMeta, etag: str) -> None:
        ops: list[Operation] = [DeleteOperation(self.names.meta_key(meta.instance_id), etag=etag)]
        ops.extend(DeleteOperation(self.names.chunk_key(meta.instance_id, i))
                   for i in range(meta.chunks))
        await self._transact(ops, ())

    # --- registrations -----------------------------------------------------------------------
    async def register(self, kind: str, names: Iterable[str], ttl: timedelta) -> None:
        """This worker hosts ``names``; the entry says until when (refreshed by heartbeats)."""
        expires = dt_to_str(utcnow() + ttl).encode()
        ops: list[Operation] = [SetOperation(self.names.registration_key(kind, n), expires)
                                for n in names]
        if ops:
            await self.store.transact(ops)

    async def is_registered(self, kind: str, name: str) -> bool:
        item = await self._reads.submit(self.names.registration_key(kind, name))
        if item is None:
            return False
        return dt_from_str(item.value.decode()) > utcnow()
