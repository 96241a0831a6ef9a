"""Lock components (``lock.*``) turned into stores, each with its key prefix."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component, metadata
from tether.platform.components.keys import InvalidKeyError, KeyScheme
from tether.platform.components.registry import ComponentTypes, require_extra
from tether.platform.lock.store import LockStore

BLOCK = "lock"


class LockConfigError(BlockConfigError):
    """A lock component that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class NamedLockStore:
    name: str
    store: LockStore
    prefix: KeyScheme


def _redis(component: Component) -> LockStore:
    require_extra("redis", "redis")
    from tether.platform.lock.redis_store import RedisLockStore

    settings = metadata.RedisSettings.from_component(component)
    return RedisLockStore(settings.client(), settings.address)


def _sqlite(component: Component) -> LockStore:
    from tether.platform.lock.sqlite_store import DEFAULT_TABLE, SqliteLockStore

    # ``connectionString`` as Dapr's SQLite components name it; ``path`` as the embedded
    # pub/sub does. Either is a file path (a ``file:`` prefix is accepted and dropped).
    path = metadata.text(component, "connectionString") or metadata.text(component, "path")
    if not path:
        raise LockConfigError("metadata connectionString (the SQLite file path) is required")
    path = path.removeprefix("file:").partition("?")[0]
    table = metadata.text(component, "tableName") or DEFAULT_TABLE
    try:
        return SqliteLockStore(path, table=table)
    except ValueError as exc:
        raise LockConfigError(f"metadata tableName: {exc}") from exc


def _named(component: Component, store: LockStore, app_id: str) -> NamedLockStore:
    try:
        prefix = KeyScheme.for_component(component, app_id)
    except InvalidKeyError as exc:
        raise LOCK_TYPES.fail(component, str(exc)) from exc
    return NamedLockStore(component.name, store, prefix)


#: component type -> store factory
LOCK_TYPES = ComponentTypes(
    BLOCK, "lock store", {"lock.redis": _redis, "lock.sqlite": _sqlite}, LockConfigError
)


def lock_stores(components: Sequence[Component], app_id: str) -> Mapping[str, NamedLockStore]:
    """The app's lock stores by component name; raises LockConfigError naming the component."""
    return {
        c.name: _named(c, LOCK_TYPES.build(c), app_id) for c in LOCK_TYPES.of(components)
    }
