""":class:`SqliteStore`: the :class:`LogStore` of ``embedded://``.

SQLite calls block, so none runs on the event loop: writes go to one worker thread with
its own connection (SQLite admits one writer per file anyway), reads to a second thread and
connection so that consumers keep reading while a large batch is being written (WAL lets
readers run beside the writer). Encoding and decoding happen on those threads too.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Concatenate, ParamSpec, TypeVar

from tether.brokers.base import BrokerClosedError, BrokerUnavailableError
from tether.brokers.embedded import rows, schema, tables
from tether.brokers.embedded.wakeup import Hub, acquire_hub, release_hub
from tether.brokers.log.store import Entry, LogStore
from tether.brokers.subscription import Record

#: NORMAL in WAL mode: an accepted event survives any process crash, without an fsync per
#: publish (FULL adds one, for power loss); see docs/brokers-embedded.md
DEFAULT_SYNCHRONOUS = "NORMAL"
DEFAULT_BUSY_TIMEOUT = 10.0
#: how often other processes' appends are looked for while a consumer waits: about 2 ms of
#: latency across processes for about 3% of a core per waiting process
DEFAULT_WATCH_INTERVAL = 0.002

P = ParamSpec("P")
T = TypeVar("T")


class _Worker:
    """One thread owning one connection (sqlite3 connections stay on their thread)."""

    def __init__(self, name: str) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._connection: sqlite3.Connection | None = None

    async def open(self, connect: Callable[[], sqlite3.Connection]) -> None:
        def _open() -> None:
            self._connection = connect()

        await asyncio.get_running_loop().run_in_executor(self._executor, _open)

    async def run(
        self,
        function: Callable[Concatenate[sqlite3.Connection, P], T],
        *args: P.args,
        **kwargs: P.kwargs,
    ) -> T:
        connection = self._connection
        if connection is None:
            raise BrokerClosedError("the embedded broker's store is not open")
        call = functools.partial(function, connection, *args, **kwargs)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)
        except sqlite3.OperationalError as exc:  # locked past busy_timeout, disk full, I/O
            raise BrokerUnavailableError(f"embedded broker: {exc}") from exc

    async def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await asyncio.get_running_loop().run_in_executor(self._executor, connection.close)
        self._executor.shutdown(wait=False)


class SqliteStore(LogStore):
    groups_appends = True  # each append is a job on the writer thread
    wakes_after_read = True  # the hub compares the seq of this task's last read (wakeup.py)

    def __init__(
        self,
        path: Path,
        *,
        synchronous: str = DEFAULT_SYNCHRONOUS,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        watch_interval: float = DEFAULT_WATCH_INTERVAL,
    ) -> None:
        self.path = path
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self.watch_interval = watch_interval
        self._writer = _Worker("tether-sqlite-write")
        self._reader = _Worker("tether-sqlite-read")
        self._hub: Hub | None = None
        self._topics: dict[str, tables.TopicInfo] = {}
        self._heads: tables.Heads = {}  # touched by the writer thread only

    async def open(self) -> None:
        try:
            resolved = await asyncio.to_thread(_prepare_directory, self.path)
            await self._writer.open(self._connect)
            await self._writer.run(schema.create_tables)
            await self._reader.open(self._connect)
        except BaseException as exc:
            await self.close()
            if isinstance(exc, (OSError, sqlite3.Error)):
                raise BrokerUnavailableError(f"cannot open broker file {self.path}: {exc}") from exc
            raise
        # one hub per file, however it is spelled, so every store on it wakes the others
        self._hub = acquire_hub(resolved, self.watch_interval, self.busy_timeout)

    async def close(self) -> None:
        hub, self._hub = self._hub, None
        if hub is not None:
            await release_hub(hub)
        await self._reader.close()
        await self._writer.close()
        # a closed store can be opened again: give it fresh threads
        self._writer = _Worker("tether-sqlite-write")
        self._reader = _Worker("tether-sqlite-read")

    def _connect(self) -> sqlite3.Connection:
        return schema.connect(self.path, self.synchronous, self.busy_timeout)

    @property
    def hub(self) -> Hub:
        if self._hub is None:
            raise BrokerClosedError("the embedded broker's store is not open")
        return self._hub

    # --- topics and messages ------------------------------------------------------------------
    async def ensure_topic(self, topic: str, partitions: int) -> int:
        info = self._topics.get(topic)
        if info is None:
            info = self._topics[topic] = await self._writer.run(
                tables.ensure_topic, topic, partitions
            )
        return info[1]

    async def append(self, topic: str, entries: Sequence[Entry]) -> None:
        await self.append_many([(topic, entries)])

    async def append_many(self, batches: Sequence[tuple[str, Sequence[Entry]]]) -> None:
        """One job on the writer thread, one INSERT statement for every topic's entries."""
        ids = [(await self._topic_id(topic), entries) for topic, entries in batches]
        seqs = await self._writer.run(_encode_and_append, ids, self._heads)
        for topic_id, seq in seqs.items():
            self.hub.observe(topic_id, seq)

    async def read(self, topic: str, partition: int, offset: int, limit: int) -> list[Record]:
        topic_id = await self._topic_id(topic)
        seq, records = await self._reader.run(_read_and_decode, topic_id, partition, offset, limit)
        self.hub.note_read(topic_id, seq)
        return records

    async def wait_for_data(self, topic: str, timeout: float) -> None:
        await self.hub.wait(await self._topic_id(topic), timeout)

    async def _topic_id(self, topic: str) -> int:
        info = self._topics.get(topic)
        if info is None:
            found = await self._reader.run(tables.find_topic, topic)
            if found is None:
                raise tables.UnknownTopicError(f"topic {topic!r} does not exist in {self.path}")
            info = self._topics[topic] = found
        return info[0]

    # --- consumer groups ----------------------------------------------------------------------
    async def committed(self, group: str, topic: str, partition: int) -> int | None:
        return await self._reader.run(tables.committed, group, topic, partition)

    async def end_offset(self, topic: str, partition: int) -> int:
        return await self._reader.run(tables.end_offset, await self._topic_id(topic), partition)

    async def commit(
        self, group: str, topic: str, partition: int, offset: int, member: str
    ) -> bool:
        return await self._writer.run(tables.commit, group, topic, partition, offset, member)

    async def heartbeat(self, group: str, topic: str, member: str, ttl: float) -> list[str]:
        return await self._writer.run(tables.heartbeat, group, topic, member, ttl)

    async def live_members(self, group: str, topic: str) -> int:
        return await self._reader.run(tables.live_members, group, topic)

    async def leave(self, group: str, topic: str, member: str) -> None:
        await self._writer.run(tables.leave, group, topic, member)

    async def claim(self, group: str, topic: str, partition: int, member: str, ttl: float) -> bool:
        return await self._writer.run(tables.claim, group, topic, partition, member, ttl)

    async def release(self, group: str, topic: str, partition: int, member: str) -> None:
        await self._writer.run(tables.release, group, topic, partition, member)


def _prepare_directory(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.resolve()


def _encode_and_append(
    connection: sqlite3.Connection, batches: Sequence[tuple[int, Sequence[Entry]]],
    heads: tables.Heads,
) -> dict[int, int]:
    # encode before the transaction: the write lock is held only for the inserts
    encoded = [(topic, rows.encode_rows(entries)) for topic, entries in batches]
    return tables.append(connection, encoded, heads)


def _read_and_decode(
    connection: sqlite3.Connection, topic: int, partition: int, offset: int, limit: int
) -> tuple[int, list[Record]]:
    seq, stored = tables.read(connection, topic, partition, offset, limit)
    return seq, rows.decode_rows(partition, stored)
