"""Job records in the app's state store: one per job, and an index of the names.

A record holds the definition as scheduled, the moment it was, its ``generation`` (a fresh
random token on every schedule, so triggers of a deleted or overwritten job are told
apart) and the trigger due next (number and time). Every write is conditional on the
ETag read, so two sidecars never both move one job forward. State stores have no key
listing, hence the index: one item listing the app's job names, updated with the same
ETag check (a name whose record is gone is skipped when listing and pruned).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from tether.platform.events import format_time, parse_time
from tether.platform.jobs.model import Job, Timeline
from tether.platform.state.store import (
    DeleteOperation,
    ETagMismatchError,
    SetOperation,
    StateStore,
)

KEY_PREFIX = "tether-jobs"
#: attempts at an index update that keeps losing to concurrent writers
INDEX_ATTEMPTS = 50


def new_generation() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True, slots=True)
class Record:
    job: Job
    generation: str
    created: datetime
    #: the number (0-based) and time of the trigger due next
    next_trigger: int
    next_time: datetime
    etag: str | None = None

    @property
    def timeline(self) -> Timeline:
        return Timeline.of(self.job, self.created)

    def advanced(self, trigger: int, time: datetime) -> Record:
        return replace(self, next_trigger=trigger, next_time=time)

    def encode(self) -> bytes:
        return json.dumps({
            "job": self.job.to_json(), "generation": self.generation,
            "created": format_time(self.created), "next": self.next_trigger,
            "nextTime": format_time(self.next_time),
        }, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, raw: bytes, etag: str) -> Record:
        body: dict[str, Any] = json.loads(raw)
        job = body["job"]
        return cls(Job.from_json(job["name"], job), body["generation"],
                   parse_time(body["created"]), int(body["next"]),
                   parse_time(body["nextTime"]), etag)


class JobRecords:
    """``app_id``'s job records in ``store``."""

    def __init__(self, store: StateStore, app_id: str) -> None:
        self.store = store
        self.app_id = app_id
        self._index_key = f"{KEY_PREFIX}||{app_id}"

    def key(self, name: str) -> str:
        return f"{KEY_PREFIX}||{self.app_id}||{name}"

    async def get(self, name: str) -> Record | None:
        item = await self.store.get(self.key(name))
        return None if item is None else Record.decode(item.value, item.etag)

    async def put(self, record: Record, *, create: bool = False) -> Record:
        """Write ``record`` if its ETag still matches (``create``: if there is none);
        ETagMismatchError when another writer came first."""
        etag = await self.store.set(SetOperation(
            self.key(record.job.name), record.encode(),
            etag=None if create else record.etag, first_write=create,
            content_type="application/json"))
        return replace(record, etag=etag)

    async def delete(self, name: str, etag: str | None = None) -> None:
        await self.store.delete(DeleteOperation(self.key(name), etag=etag))

    async def names(self) -> list[str]:
        item = await self.store.get(self._index_key)
        return [] if item is None else list(json.loads(item.value))

    async def all(self) -> list[Record]:
        names = await self.names()
        items = await self.store.bulk_get([self.key(n) for n in names]) if names else []
        records = [Record.decode(i.value, i.etag) for i in items if i is not None]
        if len(records) < len(names):  # a record deleted without its index entry
            await self.unindex(*(n for n, i in zip(names, items, strict=True) if i is None))
        return records

    async def index(self, name: str) -> None:
        await self._update_index(lambda names: names | {name})

    async def unindex(self, *names: str) -> None:
        gone = set(names)
        await self._update_index(lambda current: current - gone)

    async def _update_index(self, change: Any) -> None:
        for _ in range(INDEX_ATTEMPTS):
            item = await self.store.get(self._index_key)
            current = set() if item is None else set(json.loads(item.value))
            wanted = change(current)
            if wanted == current:
                return
            value = json.dumps(sorted(wanted)).encode()
            try:
                await self.store.set(SetOperation(
                    self._index_key, value, etag=None if item is None else item.etag,
                    first_write=item is None, content_type="application/json"))
                return
            except ETagMismatchError:
                continue
        raise ETagMismatchError(self._index_key, "the job index kept changing under us")
