"""``state.postgresql``: one table in PostgreSQL, psycopg 3 async with a small pool.

Columns: ``key`` (primary key), ``value`` (bytea, for values that are not JSON) or
``value_json`` (json, which keeps the text exactly, so values round-trip byte for byte),
``etag``, ``content_type``, ``expires_at``, ``updated_at``. The outbox is the table
``<tableName>_outbox`` in the same database, written in the same transaction.

Every write is a single conditional statement (an UPDATE/DELETE ``WHERE etag = ...``, or
an INSERT ... ON CONFLICT that only replaces an expired row): PostgreSQL re-checks the
condition after a concurrent writer commits, so exactly one of several writers holding
the same ETag wins, and a statement that touched no row is the conflict. A transaction
runs its statements in one database transaction and rolls back at the first conflict.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool

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
    StateItem,
    StateStore,
    StateStoreError,
)
from tether.platform.state.stores import query as q
from tether.platform.state.stores.common import (
    check_operations,
    etag_for,
    is_key,
    item_metadata,
    json_text,
)
from tether.platform.state.stores.postgresql_query import compile_query

SCHEMA_VERSION = "1"
POOL_SIZE = 4
#: delete expired rows after this many writes (reads already hide them)
PURGE_EVERY = 500
_LIVE = "(expires_at IS NULL OR expires_at > now())"


class PostgresStateStore(StateStore):
    features = frozenset({FEATURE_ETAG, FEATURE_TRANSACTIONAL, FEATURE_TTL, FEATURE_QUERY_API})

    def __init__(self, pool: AsyncConnectionPool, table: str, metadata_table: str,
                 timeout: float) -> None:
        self._pool = pool
        self._table = table
        self._outbox = f"{table}_outbox"
        self._metadata_table = metadata_table
        self._timeout = timeout
        self._writes = 0
        t = table
        self._sql = {
            "select": f"SELECT key, value, value_json::text, etag, expires_at FROM {t}"
                      f" WHERE key = ANY(%s) AND {_LIVE}",
            "upsert": f"INSERT INTO {t} AS t (key, value, value_json, etag, content_type,"
                      " expires_at, updated_at) VALUES (%s, %s, %s, %s, %s,"
                      " now() + make_interval(secs => %s), now())"
                      " ON CONFLICT (key) DO UPDATE SET value = excluded.value,"
                      " value_json = excluded.value_json, etag = excluded.etag,"
                      " content_type = excluded.content_type,"
                      " expires_at = excluded.expires_at, updated_at = excluded.updated_at",
            "update": f"UPDATE {t} SET value = %s, value_json = %s, etag = %s,"
                      " content_type = %s, expires_at = now() + make_interval(secs => %s),"
                      f" updated_at = now() WHERE key = %s AND etag = %s AND {_LIVE}",
            "delete": f"DELETE FROM {t} WHERE key = %s",
            "delete_if": f"DELETE FROM {t} WHERE key = %s AND etag = %s AND {_LIVE}",
            "outbox": f"INSERT INTO {self._outbox} (id, pubsub, topic, event)"
                      " VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET"
                      " pubsub = excluded.pubsub, topic = excluded.topic,"
                      " event = excluded.event",
            "purge": f"DELETE FROM {t} WHERE expires_at <= now()",
        }

    @classmethod
    async def open(
        cls, conninfo: str, *, table: str, metadata_table: str, timeout: float
    ) -> PostgresStateStore:
        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            # bounds every statement, lock waits included
            await conn.execute(sql.SQL("SET statement_timeout = {}").format(
                sql.Literal(int(timeout * 1000))))
            await conn.commit()

        # autocommit: a read or a single write is one round trip; several statements get
        # an explicit transaction
        pool = AsyncConnectionPool(conninfo, min_size=1, max_size=POOL_SIZE, open=False,
                                   timeout=timeout, configure=configure,
                                   kwargs={"autocommit": True}, name=f"state-{table}")
        store = cls(pool, table, metadata_table, timeout)
        try:
            await pool.open(wait=True, timeout=timeout)
            await store._migrate()
        except (psycopg.Error, TimeoutError, OSError) as exc:
            await pool.close()
            raise StateStoreError(f"PostgreSQL state store {table}: {exc}") from exc
        return store

    async def _migrate(self) -> None:
        short = self._table.rsplit(".", 1)[-1]
        async with self._pool.connection() as conn, conn.transaction():
            # concurrent first opens would race on CREATE TABLE IF NOT EXISTS
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('tether-state-schema'))")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._table} ("
                " key text PRIMARY KEY, value bytea, value_json json, etag text NOT NULL,"
                " content_type text, expires_at timestamptz,"
                " updated_at timestamptz NOT NULL DEFAULT now(),"
                " CHECK ((value IS NULL) <> (value_json IS NULL)))"
            )
            await conn.execute(
                f"CREATE INDEX IF NOT EXISTS {short}_expires ON {self._table} (expires_at)"
                " WHERE expires_at IS NOT NULL"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._outbox} ("
                " seq bigserial PRIMARY KEY, id text UNIQUE NOT NULL, pubsub text NOT NULL,"
                " topic text NOT NULL, event bytea NOT NULL)"
            )
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self._metadata_table} ("
                " key text PRIMARY KEY, value text NOT NULL)"
            )
            await conn.execute(
                f"INSERT INTO {self._metadata_table} VALUES ('schema-version', %s)"
                " ON CONFLICT (key) DO NOTHING", (SCHEMA_VERSION,)
            )

    # --- reads ----------------------------------------------------------------------

    async def get(self, key: str) -> StateItem | None:
        return (await self.bulk_get([key]))[0]

    async def bulk_get(self, keys: Sequence[str]) -> list[StateItem | None]:
        wanted = [key for key in keys if is_key(key)]  # no other key can have been written
        if not wanted:
            return [None] * len(keys)
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(self._sql["select"], (wanted,))
                found = {row[0]: _item(*row) for row in await cur.fetchall()}
        except psycopg.Error as exc:
            raise StateStoreError(f"PostgreSQL state store: {exc}") from exc
        return [found.get(key) for key in keys]

    async def query(self, query: Query) -> QueryResult:
        p = q.plan(query)
        statement, params = compile_query(self._table, p)
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(statement, params)
                rows = [_item(*row) for row in await cur.fetchall()]
        except psycopg.Error as exc:
            raise StateStoreError(f"PostgreSQL state store: {exc}") from exc
        items, token = q.cut(rows, p)
        return QueryResult(items, token)

    # --- writes ---------------------------------------------------------------------

    async def transact(
        self, ops: Sequence[Operation], outbox: Sequence[OutboxRecord] = ()
    ) -> list[str | None]:
        return await self._write(ops, outbox)

    async def _write(self, ops: Sequence[Operation], outbox: Sequence[OutboxRecord]
                     ) -> list[str | None]:
        check_operations(ops)
        self._writes += 1
        try:
            async with self._pool.connection() as conn:
                if len(ops) == 1 and not outbox:  # one statement is atomic on its own
                    etags = [await self._apply(conn, ops[0])]
                else:
                    async with conn.transaction():
                        etags = [await self._apply(conn, op) for op in ops]
                        async with conn.cursor() as cur:
                            await cur.executemany(self._sql["outbox"], [
                                (r.id, r.pubsub, r.topic, r.event) for r in outbox])
                if self._writes % PURGE_EVERY == 0:
                    await conn.execute(self._sql["purge"])
        except psycopg.Error as exc:
            raise StateStoreError(f"PostgreSQL state store: {exc}") from exc
        return etags

    async def _apply(self, conn: psycopg.AsyncConnection[Any], op: Operation) -> str | None:
        """Run one operation's statement; no row touched means a conflict."""
        if isinstance(op, DeleteOperation):
            if op.etag is None:
                await conn.execute(self._sql["delete"], (op.key,))
                return None
            cur = await conn.execute(self._sql["delete_if"], (op.key, op.etag))
            if cur.rowcount != 1:
                raise ETagMismatchError(op.key)
            return None
        etag = etag_for(op)
        text = json_text(op.value)
        value = None if text is not None else op.value
        ttl = None if op.ttl_seconds is None or op.ttl_seconds == -1 else op.ttl_seconds
        if op.etag is not None:
            cur = await conn.execute(self._sql["update"], (
                value, text, etag, op.content_type, ttl, op.key, op.etag))
        elif op.first_write:
            cur = await conn.execute(self._sql["upsert"] + " WHERE t.expires_at <= now()", (
                op.key, value, text, etag, op.content_type, ttl))
        else:
            cur = await conn.execute(self._sql["upsert"], (
                op.key, value, text, etag, op.content_type, ttl))
        if cur.rowcount != 1:
            raise ETagMismatchError(op.key)
        return etag

    # --- outbox ---------------------------------------------------------------------

    async def outbox_pending(self, limit: int) -> list[OutboxRecord]:
        try:
            async with self._pool.connection() as conn:
                cur = await conn.execute(
                    f"SELECT id, pubsub, topic, event FROM {self._outbox} ORDER BY seq"
                    " LIMIT %s", (limit,))
                return [OutboxRecord(r[0], r[1], r[2], bytes(r[3]))
                        for r in await cur.fetchall()]
        except psycopg.Error as exc:
            raise StateStoreError(f"PostgreSQL state store: {exc}") from exc

    async def outbox_done(self, ids: Sequence[str]) -> None:
        if not ids:
            return
        try:
            async with self._pool.connection() as conn:
                await conn.execute(f"DELETE FROM {self._outbox} WHERE id = ANY(%s)",
                                   (list(ids),))
        except psycopg.Error as exc:
            raise StateStoreError(f"PostgreSQL state store: {exc}") from exc

    async def close(self) -> None:
        await self._pool.close()


def _item(key: str, value: bytes | None, value_json: str | None, etag: str,
          expires_at: datetime | None) -> StateItem:
    raw = value_json.encode() if value_json is not None else bytes(value or b"")
    return StateItem(key, raw, etag,
                     item_metadata(None if expires_at is None else expires_at.timestamp()))


