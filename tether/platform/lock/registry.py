"""Lock components (``lock.*``) turned into stores, each with its key prefix."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from tether.platform.components import Component
from tether.platform.errors import ConfigError
from tether.platform.lock.keys import KeyPrefix, LockKeyError
from tether.platform.lock.store import LockStore

BLOCK = "lock"


class LockConfigError(ConfigError):
    """A lock component that cannot be used; the message names it."""


@dataclass(frozen=True, slots=True)
class NamedLockStore:
    name: str
    store: LockStore
    prefix: KeyPrefix


def _redis(component: Component) -> LockStore:
    from tether.platform.lock.redis_connection import RedisMetadataError, redis_client
    from tether.platform.lock.redis_store import RedisLockStore

    try:
        return RedisLockStore(redis_client(component))
    except RedisMetadataError as exc:
        raise LockConfigError(str(exc)) from exc


def _sqlite(component: Component) -> LockStore:
    from tether.platform.lock.sqlite_store import DEFAULT_TABLE, SqliteLockStore

    # ``connectionString`` as Dapr's SQLite components name it; ``path`` as the embedded
    # pub/sub does. Either is a file path (a ``file:`` prefix is accepted and dropped).
    path = component.value("connectionString") or component.value("path")
    if not path:
        raise LockConfigError("metadata connectionString (the SQLite file path) is required")
    path = path.removeprefix("file:").partition("?")[0]
    table = component.value("tableName") or DEFAULT_TABLE
    try:
        return SqliteLockStore(path, table=table)
    except ValueError as exc:
        raise LockConfigError(f"metadata tableName: {exc}") from exc


#: component type -> store factory
STORE_TYPES: dict[str, Callable[[Component], LockStore]] = {
    "lock.redis": _redis,
    "lock.sqlite": _sqlite,
}


def _where(component: Component) -> str:
    where = f" ({component.source})" if component.source is not None else ""
    return f"lock store {component.name!r}{where}"


def lock_stores(components: Sequence[Component], app_id: str) -> Mapping[str, NamedLockStore]:
    """The app's lock stores by component name; raises LockConfigError naming the component."""
    stores: dict[str, NamedLockStore] = {}
    for component in components:
        if component.block != BLOCK:
            continue
        factory = STORE_TYPES.get(component.type)
        if factory is None:
            known = ", ".join(sorted(STORE_TYPES))
            raise LockConfigError(
                f"{_where(component)}: type {component.type!r} is not supported ({known})"
            )
        try:
            prefix = KeyPrefix.from_metadata(component.value("keyPrefix"), component.name, app_id)
            store = factory(component)
        except (LockConfigError, LockKeyError) as exc:
            raise LockConfigError(f"{_where(component)}: {exc}") from exc
        stores[component.name] = NamedLockStore(component.name, store, prefix)
    return stores
