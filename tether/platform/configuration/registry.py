"""Configuration components (``configuration.*``) turned into stores."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from tether.platform.components import Component
from tether.platform.configuration.store import ConfigurationStore
from tether.platform.errors import ConfigError

BLOCK = "configuration"


class ConfigurationConfigError(ConfigError):
    """A configuration component that cannot be used; the message names it."""


def _redis(component: Component) -> ConfigurationStore:
    from tether.platform.configuration.redis_store import RedisConfigurationStore
    from tether.platform.lock.redis_connection import (
        RedisMetadataError,
        redis_client,
        redis_options,
    )

    try:
        db = int(str(redis_options(component)["db"]))
        return RedisConfigurationStore(redis_client(component), db)
    except RedisMetadataError as exc:
        raise ConfigurationConfigError(str(exc)) from exc


def _postgres(component: Component) -> ConfigurationStore:
    try:
        from tether.platform.configuration.postgres_store import PostgresConfigurationStore
    except ImportError as exc:  # psycopg is an extra
        raise ConfigurationConfigError(
            "needs psycopg: pip install 'tether[postgresql]'"
        ) from exc

    conninfo = component.value("connectionString")
    if not conninfo:
        raise ConfigurationConfigError("metadata connectionString is required")
    table = component.value("table")
    if not table:
        raise ConfigurationConfigError("metadata table is required")
    try:
        return PostgresConfigurationStore(
            conninfo, table, component.value("pgNotifyChannel") or None
        )
    except ValueError as exc:
        raise ConfigurationConfigError(f"metadata table: {exc}") from exc


#: component type -> store factory
STORE_TYPES: dict[str, Callable[[Component], ConfigurationStore]] = {
    "configuration.redis": _redis,
    "configuration.postgresql": _postgres,
    "configuration.postgres": _postgres,  # the short name, also accepted
}


def _where(component: Component) -> str:
    where = f" ({component.source})" if component.source is not None else ""
    return f"configuration store {component.name!r}{where}"


def configuration_store(component: Component) -> ConfigurationStore:
    """The store of one ``configuration.*`` component; raises ConfigurationConfigError."""
    factory = STORE_TYPES.get(component.type)
    if factory is None:
        known = ", ".join(sorted(STORE_TYPES))
        raise ConfigurationConfigError(
            f"{_where(component)}: type {component.type!r} is not supported ({known})"
        )
    try:
        return factory(component)
    except ConfigurationConfigError as exc:
        raise ConfigurationConfigError(f"{_where(component)}: {exc}") from exc


def configuration_stores(components: Sequence[Component]) -> Mapping[str, ConfigurationStore]:
    """The app's configuration stores by component name."""
    return {c.name: configuration_store(c) for c in components if c.block == BLOCK}
