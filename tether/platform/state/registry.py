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

from tether.platform import env
from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component, metadata
from tether.platform.components.metadata import MetadataError
from tether.platform.components.registry import ComponentTypes, require_extra
from tether.platform.state.store import MAX_TTL_SECONDS, StateStore

BLOCK = "state"
#: the state file of a state.sqlite component without connectionString (in env.data_dir())
DEFAULT_SQLITE_FILE = "state.db"
DEFAULT_TABLE = "state"
DEFAULT_METADATA_TABLE = "tether_state_metadata"
DEFAULT_TIMEOUT = 20.0
DEFAULT_BUSY_TIMEOUT = 5.0

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")


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


def _identifier(component: Component, field: str, default: str, *, schema: bool = False
                ) -> str:
    value = metadata.text(component, field) or default
    parts = value.split(".")
    if len(parts) > (2 if schema else 1) or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise MetadataError(field, f"{value!r} must be a table name (letters, digits, _)"
                            + (", optionally schema.table" if schema else ""))
    return value


def _memory(component: Component, base_dir: Path | None) -> Opener:
    async def opener() -> StateStore:
        from tether.platform.state.stores.memory import MemoryStateStore

        return MemoryStateStore()

    return opener


def _sqlite(component: Component, base_dir: Path | None) -> Opener:
    raw = metadata.text(component, "connectionString") or str(env.data_dir() / DEFAULT_SQLITE_FILE)
    if raw.startswith("file:"):  # Dapr accepts file: URIs; options after ? are not used
        raw = raw.removeprefix("file:").split("?", 1)[0]
    if raw in (":memory:", ""):
        raise MetadataError("connectionString", "must be a file path (use state.in-memory "
                                                "for a store in memory)")
    path = Path(raw).expanduser()
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    table = _identifier(component, "tableName", DEFAULT_TABLE)
    metadata_table = _identifier(component, "metadataTableName", DEFAULT_METADATA_TABLE)
    # Dapr's timeout bounds each operation; here the busy timeout does (a write waits at
    # most that long for the file's write lock), so timeout is only checked
    metadata.duration(component, "timeout", DEFAULT_TIMEOUT)
    busy = metadata.duration(component, "busyTimeout", DEFAULT_BUSY_TIMEOUT)

    async def opener() -> StateStore:
        from tether.platform.state.stores.sqlite import SqliteStateStore

        return await SqliteStateStore.open(
            path, table=table, metadata_table=metadata_table, busy_timeout=busy
        )

    return opener


def _redis(component: Component, base_dir: Path | None) -> Opener:
    require_extra("redis", "redis")
    settings = metadata.RedisSettings.from_component(component)
    ttl = metadata.integer(component, "ttlInSeconds", minimum=-1)
    if ttl == 0 or (ttl is not None and ttl > MAX_TTL_SECONDS):
        raise MetadataError("ttlInSeconds", f"must be a number of seconds from 1 to "
                                            f"{MAX_TTL_SECONDS} or -1")

    async def opener() -> StateStore:
        from tether.platform.state.stores.redis import RedisStateStore

        return await RedisStateStore.open(
            settings.client(), settings.address, default_ttl=None if ttl == -1 else ttl,
            outbox_key=f"tether||outbox||{component.name}",
        )

    return opener


def _postgresql(component: Component, base_dir: Path | None) -> Opener:
    require_extra("postgresql", "psycopg", "psycopg_pool")
    conninfo = metadata.required(component, "connectionString")
    table = _identifier(component, "tableName", DEFAULT_TABLE, schema=True)
    metadata_table = _identifier(
        component, "metadataTableName", DEFAULT_METADATA_TABLE, schema=True
    )
    timeout = metadata.duration(component, "timeout", DEFAULT_TIMEOUT)
    # Dapr's v1 name for the same setting
    timeout = float(metadata.integer(component, "timeoutInSeconds", minimum=1) or timeout)

    async def opener() -> StateStore:
        from tether.platform.state.stores.postgresql import PostgresStateStore

        return await PostgresStateStore.open(
            conninfo, table=table, metadata_table=metadata_table, timeout=timeout
        )

    return opener


#: the state component types Tether can open
STATE_TYPES: ComponentTypes[[Path | None], Opener] = ComponentTypes(
    BLOCK,
    "state store component",
    {
        "state.in-memory": _memory,
        "state.sqlite": _sqlite,
        "state.redis": _redis,
        "state.postgresql": _postgresql,
    },
    StateStoreConfigError,
    versions=("v1", "v2"),
    unknown=UnknownStateStoreError,
)


def state_store_spec(component: Component, base_dir: Path | None = None) -> StateStoreSpec:
    """Check a ``state.*`` component (no I/O); ``base_dir`` anchors a relative SQLite path."""
    return StateStoreSpec(component.name, component.type, STATE_TYPES.build(component, base_dir))


async def open_state_store(component: Component, base_dir: Path | None = None) -> StateStore:
    """Check and open one state component; connection failures raise StateStoreError."""
    return await state_store_spec(component, base_dir).opener()
