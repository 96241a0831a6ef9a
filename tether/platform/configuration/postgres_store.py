"""``configuration.postgresql``: a table of (key, value, version, metadata), changes through
LISTEN/NOTIFY, as Dapr's component.

The table and the trigger that notifies are the user's, as Dapr documents them
(docs/configuration.md): the trigger sends ``{"table", "action", "data": row}`` as JSON on
a channel; a subscription names the channel with ``metadata.pgNotifyChannel`` (or the
component's ``pgNotifyChannel`` metadata, Tether's default). Each watch holds its own
connection, since a LISTEN belongs to a session.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

import psycopg
from psycopg import sql

from tether.platform.configuration.store import (
    ConfigurationItem,
    ConfigurationStore,
    ConfigurationStoreError,
    ConfigurationWatch,
    Items,
)

log = logging.getLogger(__name__)

CHANNEL_METADATA = "pgNotifyChannel"


def table_identifier(table: str) -> sql.Composable:
    """``name`` or ``schema.name`` as a quoted identifier (never pasted into SQL)."""
    parts = table.split(".")
    if not 1 <= len(parts) <= 2 or not all(parts):
        raise ValueError(f"table {table!r} must be name or schema.name")
    return sql.Identifier(*parts)


def _metadata(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _item(value: Any, version: Any, metadata: Any) -> ConfigurationItem:
    return ConfigurationItem(
        "" if value is None else str(value), "" if version is None else str(version),
        _metadata(metadata),
    )


class PostgresConfigurationStore(ConfigurationStore):
    def __init__(self, conninfo: str, table: str, channel: str | None = None) -> None:
        self._conninfo = conninfo
        self.table = table
        self._table = table_identifier(table)
        self._channel = channel
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        return self._conn

    async def start(self) -> None:
        """Connect, so a server that cannot be reached stops the start (ConfigurationStoreError)."""
        async with self._lock:
            try:
                await self._connection()
            except psycopg.Error as exc:
                raise ConfigurationStoreError(f"cannot reach PostgreSQL: {exc}") from exc

    async def get(self, keys: Sequence[str], metadata: Mapping[str, str]) -> Items:
        query = sql.SQL("SELECT key, value, version, metadata FROM {}").format(self._table)
        params: tuple[Any, ...] = ()
        if keys:
            query = query + sql.SQL(" WHERE key = ANY(%s)")
            params = (list(keys),)
        async with self._lock:
            try:
                conn = await self._connection()
                cursor = await conn.execute(query, params)
                rows = await cursor.fetchall()
            except psycopg.Error as exc:
                # a broken connection is replaced on the next call
                if self._conn is not None and self._conn.broken:
                    await self._conn.close()
                raise ConfigurationStoreError(f"postgresql: {exc}") from exc
        return {str(row[0]): _item(row[1], row[2], row[3]) for row in rows}

    async def watch(self, keys: Sequence[str], metadata: Mapping[str, str]) -> ConfigurationWatch:
        channel = metadata.get(CHANNEL_METADATA) or self._channel
        if not channel:
            raise ConfigurationStoreError(
                f"metadata.{CHANNEL_METADATA} is required to subscribe to a PostgreSQL "
                "configuration store (the channel its trigger notifies)"
            )
        try:
            conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
        except psycopg.Error as exc:
            raise ConfigurationStoreError(f"postgresql: {exc}") from exc
        try:
            await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except psycopg.Error as exc:
            await conn.close()
            raise ConfigurationStoreError(f"postgresql: {exc}") from exc
        return PostgresWatch(conn, self.table, frozenset(keys))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


class PostgresWatch(ConfigurationWatch):
    def __init__(
        self, conn: psycopg.AsyncConnection[Any], table: str, keys: frozenset[str]
    ) -> None:
        self._conn = conn
        self._table = table.rpartition(".")[2]
        self._keys = keys

    async def changes(self) -> AsyncIterator[Items]:
        try:
            async for notify in self._conn.notifies():
                change = self._parse(notify.payload)
                if change is not None:
                    yield change
        except psycopg.Error as exc:
            raise ConfigurationStoreError(f"postgresql: {exc}") from exc

    def _parse(self, payload: str) -> Items | None:
        try:
            event = json.loads(payload)
            table = event.get("table")
            row = event["data"]
            key = str(row["key"])
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("ignoring a notification that is not a configuration change: %.200s",
                        payload)
            return None
        if isinstance(table, str) and table.lower() != self._table.lower():
            return None  # another table's trigger uses the same channel
        if self._keys and key not in self._keys:
            return None
        if str(event.get("action", "")).upper() == "DELETE":
            return {key: ConfigurationItem("")}
        return {key: _item(row.get("value"), row.get("version"), row.get("metadata"))}

    async def close(self) -> None:
        await self._conn.close()
