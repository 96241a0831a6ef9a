"""``bindings.postgresql`` (and its alias ``bindings.postgres``): Dapr's exec, query and
close on one PostgreSQL database, psycopg 3 async with a small pool.

Request metadata ``sql`` is the statement, ``params`` a JSON array of its positional
parameters (``$1``, ``$2``, ... as in Dapr's pgx: the statement runs through psycopg's raw
cursor, so ``%`` needs no escaping). ``query`` answers the rows as a JSON array of arrays
(one array of column values per row, Dapr's shape since 1.11); both answer Dapr's metadata
``operation``, ``sql``, ``start-time``, ``end-time``, ``duration`` and, for exec,
``rows-affected``. A statement the database refuses (syntax, constraint, type) is the
caller's mistake (400, with the database's message); a connection that fails is a 500.
"""

from __future__ import annotations

import base64
import datetime
import json
import math
import time
import uuid
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import conninfo as pg_conninfo
from psycopg.types.json import Jsonb
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from tether.platform.bindings.binding import (
    CLOSE,
    EXEC,
    QUERY,
    Binding,
    BindingFailedError,
    BindingRequest,
    BindingRequestError,
    BindingResponse,
)
from tether.platform.components import Component, metadata

#: Dapr's default for connecting (``timeout``)
DEFAULT_TIMEOUT = 20.0
#: pgx's default pool size is max(4, CPUs); a sidecar's binding needs no more by default
DEFAULT_POOL_SIZE = 4
#: SQLSTATE classes that mean the server or the connection failed, not the statement:
#: connection exception, insufficient resources, operator intervention, system error,
#: internal error
_SERVER_CLASSES = ("08", "53", "57", "58", "XX")


def go_duration(ns: int) -> str:
    """Go's ``time.Duration.String()`` (``1.5ms``, ``2m3.5s``), Dapr's ``duration``."""
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
            if ns >= size:
                return sign + _fraction(ns, size) + unit
    hours, rest = divmod(ns, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    text = f"{hours}h" if hours else ""
    if hours or minutes:
        text += f"{minutes}m"
    return sign + text + _fraction(rest, 1_000_000_000) + "s"


def _fraction(value: int, unit: int) -> str:
    whole, part = divmod(value, unit)
    digits = len(str(unit)) - 1
    decimals = f"{part:0{digits}d}".rstrip("0") if digits else ""
    return f"{whole}.{decimals}" if decimals else str(whole)


def rfc3339_nano(ns: int) -> str:
    """A UTC time in Go's ``time.RFC3339Nano`` (trailing zeros of the fraction dropped)."""
    seconds, part = divmod(ns, 1_000_000_000)
    stamp = datetime.datetime.fromtimestamp(seconds, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    decimals = f"{part:09d}".rstrip("0")
    return f"{stamp}.{decimals}Z" if decimals else f"{stamp}Z"


def _json(value: Any) -> str:
    """One column value as JSON text, close to what Dapr's pgx values marshal to: numerics
    as numbers (exactly), bytea as base64, times in RFC 3339, json columns as JSON."""
    if value is None or isinstance(value, bool | int | str):
        return json.dumps(value)
    if isinstance(value, float):
        return json.dumps(value) if math.isfinite(value) else json.dumps(str(value))
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return json.dumps(base64.b64encode(bytes(value)).decode())
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:  # timestamp without time zone: pgx reads it as UTC
            value = value.replace(tzinfo=datetime.UTC)
        utc = value.astimezone(datetime.UTC)
        decimals = f"{utc.microsecond:06d}".rstrip("0")
        return json.dumps(utc.strftime("%Y-%m-%dT%H:%M:%S") + (f".{decimals}" if decimals
                                                                else "") + "Z")
    if isinstance(value, datetime.date):
        return json.dumps(f"{value.isoformat()}T00:00:00Z")
    if isinstance(value, Mapping):
        return "{" + ",".join(f"{json.dumps(str(k))}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_json(v) for v in value) + "]"
    if isinstance(value, uuid.UUID | datetime.time | datetime.timedelta):
        return json.dumps(str(value))
    return json.dumps(str(value))


def _params(request: BindingRequest) -> list[Any] | None:
    text = request.metadata.get("params", "")
    if not text:
        return None
    try:
        values = json.loads(text)
    except ValueError as exc:
        raise BindingRequestError(f"metadata params is not JSON: {exc}") from None
    if not isinstance(values, list):
        raise BindingRequestError("metadata params must be a JSON array of the statement's "
                                  "$1, $2, ... values")
    # an object goes to a json/jsonb parameter; the rest psycopg adapts as they are
    return [Jsonb(v) if isinstance(v, dict) else v for v in values]


def _failure(exc: Exception) -> Exception:
    """The binding error for what psycopg raised."""
    state = getattr(exc, "sqlstate", None)
    if isinstance(exc, PoolTimeout):
        return BindingFailedError(f"no PostgreSQL connection available: {exc}")
    if state is not None:
        # 08P01 (protocol violation) is what a params count that does not fit the SQL gets
        if state.startswith(_SERVER_CLASSES) and state != "08P01":
            return BindingFailedError(f"PostgreSQL failed: {exc}")
        return BindingRequestError(f"{exc}".strip())
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        return BindingFailedError(f"PostgreSQL failed: {exc}")
    return BindingRequestError(f"{exc}".strip())  # e.g. params that do not fit the SQL


class PostgresBinding:
    """The output side: a pool opened at start; ``close`` closes it for good (Dapr)."""

    operations = frozenset({EXEC, QUERY, CLOSE})

    def __init__(self, conninfo: str, *, timeout: float, pool_size: int) -> None:
        self.conninfo = conninfo
        self.timeout = timeout
        self.pool_size = pool_size
        self._pool: AsyncConnectionPool | None = None
        self._closed = False

    async def start(self) -> None:
        pool = AsyncConnectionPool(self.conninfo, min_size=1, max_size=self.pool_size,
                                   open=False, timeout=self.timeout,
                                   kwargs={"autocommit": True}, name="binding")
        try:
            await pool.open(wait=True, timeout=self.timeout)
        except (psycopg.Error, PoolTimeout, OSError) as exc:
            await pool.close()
            raise BindingFailedError(f"unable to connect to PostgreSQL: {exc}") from exc
        self._pool = pool

    async def close(self) -> None:
        self._closed = True
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        if request.operation == CLOSE:
            await self.close()
            return BindingResponse()
        if self._closed or self._pool is None:
            raise BindingFailedError("the PostgreSQL binding is closed")
        if request.operation not in (EXEC, QUERY):
            raise BindingRequestError(f"unsupported operation {request.operation!r}")
        statement = request.metadata.get("sql", "")
        if not statement:
            raise BindingRequestError("metadata sql is required (the statement to run)")
        params = _params(request)
        start = time.time_ns()
        answer = {"operation": request.operation, "sql": statement,
                  "start-time": rfc3339_nano(start)}
        data: bytes | None = None
        try:
            async with self._pool.connection() as conn:
                cursor = psycopg.AsyncRawCursor(conn)
                async with cursor:
                    await cursor.execute(statement, params)
                    if request.operation == EXEC:
                        answer["rows-affected"] = str(max(cursor.rowcount, 0))
                    else:
                        rows: Sequence[Sequence[Any]] = (
                            await cursor.fetchall() if cursor.description is not None else [])
                        data = ("[" + ",".join(_json(list(row)) for row in rows) + "]").encode()
        except (psycopg.Error, PoolTimeout) as exc:
            raise _failure(exc) from exc
        end = time.time_ns()
        answer["end-time"] = rfc3339_nano(end)
        answer["duration"] = go_duration(end - start)
        return BindingResponse(data=data, metadata=answer,
                               content_type="application/json" if data is not None else None)


def build(component: Component) -> Binding:
    conninfo = metadata.text(component, "connectionString") or metadata.text(component, "url")
    if conninfo is None:
        raise metadata.MetadataError("connectionString", "is required (a PostgreSQL URL or "
                                                         "libpq key=value string)")
    try:
        pg_conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:  # its message quotes the string, password included
        raise metadata.MetadataError("connectionString", "cannot be parsed as a PostgreSQL "
                                                         "URL or key=value string") from None
    timeout = DEFAULT_TIMEOUT
    for field in ("timeout", "timeoutInSeconds"):
        if metadata.text(component, field) is not None:
            timeout = metadata.duration(component, field, DEFAULT_TIMEOUT)
    pool_size = metadata.integer(component, "maxConns", minimum=1) or DEFAULT_POOL_SIZE
    return Binding(name=component.name, type=component.type,
                   output=PostgresBinding(conninfo, timeout=timeout, pool_size=pool_size))
