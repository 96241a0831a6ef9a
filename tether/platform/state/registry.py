"""Dapr ``state.*`` components turned into open state stores.

:func:`state_store_spec` checks a component's metadata without any I/O (so a bad component
stops the sidecar at startup, naming the component and the field);
:func:`open_state_store` then connects. Unknown metadata keys are ignored, as Dapr does
(``keyPrefix`` and the outbox keys belong to the state API, not to the store).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component
from tether.platform.state.store import StateStore

DEFAULT_SQLITE_PATH = ".tether/state.db"
DEFAULT_TABLE = "state"
DEFAULT_METADATA_TABLE = "tether_state_metadata"
DEFAULT_TIMEOUT = 20.0
DEFAULT_BUSY_TIMEOUT = 5.0

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)?")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


class StateStoreConfigError(BlockConfigError):
    """A state component Tether cannot open; the message names the component and field."""


class UnknownStateStoreError(StateStoreConfigError):
    """A ``state.*`` type Tether has no store for."""


Opener = Callable[[], Awaitable[StateStore]]


@dataclass(frozen=True, slots=True)
class StateStoreSpec:
    """A checked state component: its name, type, and how to open it."""

    name: str
    type: str
    opener: Opener


def _where(component: Component) -> str:
    where = f" ({component.source})" if component.source is not None else ""
    return f"state store component {component.name!r}{where}"


def _fail(component: Component, field: str, problem: str) -> StateStoreConfigError:
    return StateStoreConfigError(f"{_where(component)}: metadata {field} {problem}")


def _text(component: Component, field: str) -> str | None:
    if field in component.secret_refs():
        raise _fail(component, field, "uses secretKeyRef, which needs a secret store: "
                                      "not supported for state stores yet")
    value = component.value(field)
    return value.strip() if value is not None and value.strip() else None


def _required(component: Component, field: str) -> str:
    value = _text(component, field)
    if value is None:
        raise _fail(component, field, "is required")
    return value


def _identifier(component: Component, field: str, default: str, *, schema: bool = False
                ) -> str:
    value = _text(component, field) or default
    parts = value.split(".")
    if len(parts) > (2 if schema else 1) or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise _fail(component, field, f"{value!r} must be a table name (letters, digits, _)"
                    + (", optionally schema.table" if schema else ""))
    return value


def _duration(component: Component, field: str, default: float) -> float:
    """Dapr durations: ``20s``, ``500ms``, ``1m``, or a number of seconds."""
    value = _text(component, field)
    if value is None:
        return default
    match = _DURATION.fullmatch(value)
    seconds = float(match.group(1)) * _UNITS[match.group(2)] if match else 0.0
    if seconds <= 0:
        raise _fail(component, field, f"{value!r} must be a positive duration like 20s")
    return seconds


def _integer(component: Component, field: str, *, minimum: int) -> int | None:
    value = _text(component, field)
    if value is None:
        return None
    if not re.fullmatch(r"-?\d+", value) or int(value) < minimum:
        raise _fail(component, field, f"{value!r} must be a whole number >= {minimum}")
    return int(value)


def _boolean(component: Component, field: str) -> bool:
    value = (_text(component, field) or "false").lower()
    if value not in ("true", "false"):
        raise _fail(component, field, f"{value!r} must be true or false")
    return value == "true"


def _missing_extra(component: Component, extra: str, exc: ImportError
                   ) -> StateStoreConfigError:
    return StateStoreConfigError(
        f"{_where(component)}: {component.type} needs the {extra} driver "
        f"(pip install 'tether[{extra}]'): {exc}"
    )


def _memory(component: Component, base_dir: Path | None) -> Opener:
    async def opener() -> StateStore:
        from tether.platform.state.stores.memory import MemoryStateStore

        return MemoryStateStore()

    return opener


def _sqlite(component: Component, base_dir: Path | None) -> Opener:
    raw = _text(component, "connectionString") or DEFAULT_SQLITE_PATH
    if raw.startswith("file:"):  # Dapr accepts file: URIs; options after ? are not used
        raw = raw.removeprefix("file:").split("?", 1)[0]
    if raw in (":memory:", ""):
        raise _fail(component, "connectionString", "must be a file path (use "
                    "state.in-memory for a store in memory)")
    path = Path(raw).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    table = _identifier(component, "tableName", DEFAULT_TABLE)
    metadata_table = _identifier(component, "metadataTableName", DEFAULT_METADATA_TABLE)
    # Dapr's timeout bounds each operation; here the busy timeout does (a write waits at
    # most that long for the file's write lock), so timeout is only checked
    _duration(component, "timeout", DEFAULT_TIMEOUT)
    busy = _duration(component, "busyTimeout", DEFAULT_BUSY_TIMEOUT)

    async def opener() -> StateStore:
        from tether.platform.state.stores.sqlite import SqliteStateStore

        return await SqliteStateStore.open(
            path, table=table, metadata_table=metadata_table, busy_timeout=busy
        )

    return opener


def _redis(component: Component, base_dir: Path | None) -> Opener:
    address = _required(component, "redisHost")
    host, _, port_text = address.rpartition(":")
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise _fail(component, "redisHost", f"{address!r} must be host:port")
    password = _text(component, "redisPassword")
    username = _text(component, "redisUsername")
    db = _integer(component, "redisDB", minimum=0) or 0
    tls = _boolean(component, "enableTLS")
    ttl = _integer(component, "ttlInSeconds", minimum=-1)
    if ttl == 0:
        raise _fail(component, "ttlInSeconds", "must be a positive number of seconds or -1")

    async def opener() -> StateStore:
        try:
            from tether.platform.state.stores.redis import RedisStateStore
        except ImportError as exc:
            raise _missing_extra(component, "redis", exc) from exc
        return await RedisStateStore.open(
            host=host.strip("[]"), port=int(port_text), username=username, password=password,
            db=db, tls=tls, default_ttl=None if ttl == -1 else ttl,
            outbox_key=f"tether||outbox||{component.name}",
        )

    return opener


def _postgresql(component: Component, base_dir: Path | None) -> Opener:
    conninfo = _required(component, "connectionString")
    table = _identifier(component, "tableName", DEFAULT_TABLE, schema=True)
    metadata_table = _identifier(
        component, "metadataTableName", DEFAULT_METADATA_TABLE, schema=True
    )
    timeout = _duration(component, "timeout", DEFAULT_TIMEOUT)
    if "timeoutInSeconds" in component.metadata:  # Dapr's v1 name for the same setting
        timeout = float(_integer(component, "timeoutInSeconds", minimum=1) or timeout)

    async def opener() -> StateStore:
        try:
            from tether.platform.state.stores.postgresql import PostgresStateStore
        except ImportError as exc:
            raise _missing_extra(component, "postgresql", exc) from exc
        return await PostgresStateStore.open(
            conninfo, table=table, metadata_table=metadata_table, timeout=timeout
        )

    return opener


_MAPPERS: dict[str, Callable[[Component, Path | None], Opener]] = {
    "state.in-memory": _memory,
    "state.sqlite": _sqlite,
    "state.redis": _redis,
    "state.postgresql": _postgresql,
}

#: the state component types Tether can open
STATE_TYPES = tuple(_MAPPERS)


def state_store_spec(component: Component, base_dir: Path | None = None) -> StateStoreSpec:
    """Check a ``state.*`` component (no I/O); ``base_dir`` anchors a relative SQLite path."""
    mapper = _MAPPERS.get(component.type)
    if mapper is None:
        raise UnknownStateStoreError(
            f"{_where(component)}: unknown state store type {component.type!r}; "
            f"Tether supports {', '.join(STATE_TYPES)}"
        )
    if component.version not in ("v1", "v2"):
        raise StateStoreConfigError(
            f"{_where(component)}: version {component.version!r} is not supported (v1 or v2)"
        )
    return StateStoreSpec(component.name, component.type, mapper(component, base_dir))


async def open_state_store(component: Component, base_dir: Path | None = None) -> StateStore:
    """Check and open one state component; connection failures raise StateStoreError."""
    return await state_store_spec(component, base_dir).opener()
