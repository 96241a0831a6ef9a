"""``state.sqlite``: the embedded default, a table in a SQLite file (stdlib sqlite3).

Writes, queries and large bulk reads run on one worker thread that owns the write
connection, so the event loop never waits for a commit or a long scan. The file is in WAL
mode and every write is a ``BEGIN IMMEDIATE`` transaction that reads, checks the ETag and
writes under SQLite's write lock: several processes (or several stores) can share one file
safely; a writer waits up to ``busyTimeout`` for the lock.

Reads of a few keys (``get``, a small ``bulk_get``) run on the event loop against a read
connection of their own: WAL readers neither wait for nor block the writer, a primary-key
lookup takes microseconds, and the thread handoff it saves costs far more (docs/benchmarks.md,
"State"). That connection never waits for a lock (busy timeout 0): when SQLite answers
"busy" (a rare WAL recovery), the read goes to the worker thread instead.

JSON values are stored as TEXT and everything else as a BLOB (SQLite columns are typed per
value), so the query API runs json1 functions on exactly the JSON rows and every value
round-trips byte for byte.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from tether.platform import env
from tether.platform.aio import Grouped, singly
from tether.platform.state.store import (
    FEATURE_ETAG,
    FEATURE_QUERY_API,
    FEATURE_TRANSACTIONAL,
    FEATURE_TTL,
    DeleteOperation,
    ETagMismatchError,
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
    is_key,
    item_metadata,
    json_text,
)
from tether.platform.state.stores.sqlite_query import compile_query

T = TypeVar("T")
#: one write request: its operations and outbox records, one transaction of its own
Write = tuple[list[Operation], list[OutboxRecord]]

SCHEMA_VERSION = "1"
#: delete expired rows after this many writes (reads already hide them)
PURGE_EVERY = 500
#: keys per statement in bulk_get (SQLite's default variable limit is 32766)
CHUNK = 500
#: bulk reads of at most this many keys run on the event loop (the read connection)
LOOP_READ_KEYS = 16


class SqliteStateStore(StateStore):
    features = frozenset({FEATURE_ETAG, FEATURE_TRANSACTIONAL, FEATURE_TTL, FEATURE_QUERY_API})

    def __init__(self, path: Path, table: str, metadata_table: str, busy_timeout: float) -> None:
        self._path = path
        self._table = table
        self._outbox = f"{table}_outbox"
        self._metadata_table = metadata_table
        self._busy_timeout = busy_timeout
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"state-sqlite-{table}")
        self._conn: sqlite3.Connection | None = None
        #: the event loop's read connection (opened after the schema exists)
        self._reader: sqlite3.Connection | None = None
        self._writes = 0
        # group commit: writes made concurrently share one transaction on the worker thread
        self._grouped: Grouped[Write, list[str | None]] = Grouped(
            self._write_group, grouping=env.group_commit()
        )

    @classmethod
    async def open(
        cls, path: Path, *, table: str, metadata_table: str, busy_timeout: float
    ) -> SqliteStateStore:
        store = cls(path, table, metadata_table, busy_timeout)
        try:
            await store._run(store._connect)
            store._reader = store._open_reader()
        except OSError as exc:  # its folder cannot be made: a start error naming the file
            await store.close()
            raise StateStoreError(f"SQLite state store {path}: {exc}") from exc
        except BaseException:
            await store.close()
            raise
        return store

    # --- the worker thread ----------------------------------------------------------

    async def _run(self, fn: Callable[[], T]) -> T:
        if self._executor is None:
            raise StateStoreError("the SQLite state store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn)
        except sqlite3.Error as exc:
            raise StateStoreError(f"SQLite state store {self._path}: {exc}") from exc

    def _open_reader(self) -> sqlite3.Connection:
        # autocommit, and every cursor is read to its end: no read transaction stays open
        # (it would pin an old snapshot and hold back WAL checkpoints). Any thread's loop
        # may use the store: the stdlib's SQLite is serialized (threadsafety 3)
        try:
            reader = sqlite3.connect(self._path, timeout=0, isolation_level=None,
                                     check_same_thread=False)
        except sqlite3.Error as exc:
            raise StateStoreError(f"SQLite state store {self._path}: {exc}") from exc
        reader.execute("PRAGMA busy_timeout = 0")
        reader.execute("PRAGMA query_only = 1")
        return reader

    def _connect(self) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self._path, timeout=self._busy_timeout, isolation_level=None)
        self._conn = conn
        conn.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout * 1000)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")  # durable at checkpoints, safe in WAL
        with self._write(conn):
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                " key TEXT PRIMARY KEY NOT NULL, value BLOB NOT NULL, etag TEXT NOT NULL,"
                " content_type TEXT, expires_at REAL, updated_at REAL NOT NULL)"
            )
            conn.execute(
                f"CREATE INDEX IF NOT EXISTS {self._table}_expires ON {self._table} "
                "(expires_at) WHERE expires_at IS NOT NULL"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._outbox} ("
                " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL,"
                " pubsub TEXT NOT NULL, topic TEXT NOT NULL, event BLOB NOT NULL)"
            )
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._metadata_table} ("
                " key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL)"
            )
            conn.execute(
                f"INSERT OR IGNORE INTO {self._metadata_table} VALUES ('schema-version', ?)",
                (SCHEMA_VERSION,),
            )

    class _write:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any error."""

        def __init__(self, conn: sqlite3.Connection) -> None:
            self.conn = conn

        def __enter__(self) -> sqlite3.Connection:
            self.conn.execute("BEGIN IMMEDIATE")
            return self.conn

        def __exit__(self, kind: object, exc: object, tb: object) -> None:
            if kind is not None:
                self.conn.execute("ROLLBACK")
                return
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error:
                # never leave the connection inside a failed transaction
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")
                raise

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StateStoreError("the SQLite state store is closed")
        return self._conn

    def _item(self, key: str, value: bytes | str, etag: str, expires_at: float | None
              ) -> StateItem:
        raw = value.encode() if isinstance(value, str) else value
        return StateItem(key, raw, etag, item_metadata(expires_at))

    def _select(self, keys: Sequence[str], conn: sqlite3.Connection | None = None
                ) -> dict[str, StateItem]:
        conn, now, found = conn or self._db(), time.time(), {}
        for start in range(0, len(keys), CHUNK):
            chunk = keys[start:start + CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT key, value, etag, expires_at FROM {self._table} WHERE key IN "
                f"({marks}) AND (expires_at IS NULL OR expires_at > ?)", (*chunk, now)
            )
            found.update({row[0]: self._item(*row) for row in rows})
        return found

    def _current_etag(self, conn: sqlite3.Connection, key: str, now: float) -> str | None:
        row = conn.execute(
            f"SELECT etag FROM {self._table} WHERE key = ? "
            "AND (expires_at IS NULL OR expires_at > ?)", (key, now)
        ).fetchone()
        return None if row is None else str(row[0])

    def _apply(self, conn: sqlite3.Connection, ops: Sequence[Operation], now: float
               ) -> list[str | None]:
        """Check and apply every operation inside the caller's write transaction."""
        etags: list[str | None] = []
        for op in ops:
            current = self._current_etag(conn, op.key, now)
            check_conflict(op, current)
            if isinstance(op, DeleteOperation):
                conn.execute(f"DELETE FROM {self._table} WHERE key = ?", (op.key,))
                etags.append(None)
                continue
            etag = etag_for(op)
            text = json_text(op.value)
            conn.execute(
                f"INSERT INTO {self._table} (key, value, etag, content_type, expires_at,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET"
                " value = excluded.value, etag = excluded.etag,"
                " content_type = excluded.content_type, expires_at = excluded.expires_at,"
                " updated_at = excluded.updated_at",
                (op.key, op.value if text is None else text, etag, op.content_type,
                 expiry(op.ttl_seconds, None, now), now),
            )
            etags.append(etag)
        self._writes += 1
        if self._writes % PURGE_EVERY == 0:
            conn.execute(f"DELETE FROM {self._table} WHERE expires_at <= ?", (now,))
        return etags

    def _transact(self, ops: Sequence[Operation], outbox: Sequence[OutboxRecord]
                  ) -> list[str | None]:
        with self._write(self._db()) as conn:
            etags = self._apply(conn, ops, time.time())
            self._insert_outbox(conn, outbox)
            return etags

    def _insert_outbox(self, conn: sqlite3.Connection, outbox: Sequence[OutboxRecord]) -> None:
        if outbox:
            conn.executemany(
                f"INSERT INTO {self._outbox} (id, pubsub, topic, event) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET pubsub = excluded.pubsub,"
                " topic = excluded.topic, event = excluded.event",
                [(r.id, r.pubsub, r.topic, r.event) for r in outbox],
            )

    def _transact_many(self, writes: Sequence[Write]) -> list[list[str | None] | BaseException]:
        """Each write as a savepoint of one transaction: a write whose ETag check fails is
        rolled back alone and gets its own error; the others commit together."""
        results: list[list[str | None] | BaseException] = []
        with self._write(self._db()) as conn:
            now = time.time()
            for ops, outbox in writes:
                # a single operation checks before it writes: nothing to roll back then
                savepoint = len(ops) > 1 or bool(outbox)
                if savepoint:
                    conn.execute("SAVEPOINT w")
                try:
                    etags = self._apply(conn, ops, now)
                    self._insert_outbox(conn, outbox)
                except ETagMismatchError as exc:
                    if savepoint:
                        conn.execute("ROLLBACK TO w")
                        conn.execute("RELEASE w")
                    results.append(exc)
                    continue
                if savepoint:
                    conn.execute("RELEASE w")
                results.append(etags)
        return results

    async def _write_group(self, writes: Sequence[Write]) -> list[list[str | None] | BaseException]:
        if len(writes) == 1:
            ops, outbox = writes[0]
            return [await self._run(lambda: self._transact(ops, outbox))]
        try:
            return await self._run(lambda: self._transact_many(writes))
        except StateStoreError as exc:
            if isinstance(exc.__cause__, sqlite3.OperationalError):
                raise  # locked, disk full, I/O: the store's error, every write's
            # something in one write made SQLite refuse the transaction: each alone
            return await singly(self._transact_alone, writes)

    async def _transact_alone(self, write: Write) -> list[str | None]:
        return await self._run(lambda: self._transact(*write))

    # --- the contract -----------------------------------------------------------------

    async def get(self, key: str) -> StateItem | None:
        return (await self._read([key])).get(key)

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        keys = list(keys)
        found = await self._read(keys) if keys else {}
        return [found.get(key) for key in keys]

    async def _read(self, keys: list[str]) -> dict[str, StateItem]:
        if self._executor is None:
            raise StateStoreError("the SQLite state store is closed")
        keys = [key for key in keys if is_key(key)]  # no other key can have been written
        reader = self._reader
        if reader is not None and len(keys) <= LOOP_READ_KEYS:
            try:
                return self._select(keys, reader)
            except sqlite3.OperationalError:
                pass  # busy (or locked): the worker thread's connection waits for it
            except sqlite3.Error as exc:
                raise StateStoreError(f"SQLite state store {self._path}: {exc}") from exc
        return await self._run(lambda: self._select(keys))

    async def set(self, op: SetOperation) -> str:
        check_operations([op])
        etag = (await self._grouped.submit(([op], [])))[0]
        assert etag is not None  # a set always has one
        return etag

    async def delete(self, op: DeleteOperation) -> None:
        check_operations([op])
        await self._grouped.submit(([op], []))

    async def transact(
        self, ops: Sequence[Operation], outbox: Sequence[OutboxRecord] = ()
    ) -> list[str | None]:
        ops, outbox = list(ops), list(outbox)
        check_operations(ops)
        return await self._grouped.submit((ops, outbox))

    async def outbox_pending(self, limit: int) -> list[OutboxRecord]:
        def select() -> list[OutboxRecord]:
            rows = self._db().execute(
                f"SELECT id, pubsub, topic, event FROM {self._outbox} ORDER BY seq LIMIT ?",
                (limit,),
            )
            return [OutboxRecord(r[0], r[1], r[2], bytes(r[3])) for r in rows]

        return await self._run(select)

    async def outbox_done(self, ids: Sequence[str]) -> None:
        ids = list(ids)
        if not ids:
            return

        def delete() -> None:
            with self._write(self._db()) as conn:
                conn.executemany(f"DELETE FROM {self._outbox} WHERE id = ?",
                                 [(i,) for i in ids])

        await self._run(delete)

    async def query(self, query: Query) -> QueryResult:
        p = q.plan(query)
        sql, params = compile_query(self._table, p, time.time())

        def select() -> list[StateItem]:
            return [self._item(*row) for row in self._db().execute(sql, params)]

        items, token = q.cut(await self._run(select), p)
        return QueryResult(items, token)

    async def close(self) -> None:
        if self._executor is None:
            return
        await self._grouped.drain()
        executor, self._executor = self._executor, None  # type: ignore[assignment]
        if executor is None:
            return
        reader, self._reader = self._reader, None
        if reader is not None:
            reader.close()

        def disconnect() -> None:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

        await asyncio.get_running_loop().run_in_executor(executor, disconnect)
        executor.shutdown(wait=False)

