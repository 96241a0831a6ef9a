"""Configuration components (``configuration.*``) turned into stores."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component, metadata
from tether.platform.components.registry import ComponentTypes, require_extra
from tether.platform.configuration.store import ConfigurationStore

BLOCK = "configuration"


class ConfigurationConfigError(BlockConfigError):
    """A configuration component that cannot be used; the message names it."""


def _redis(component: Component) -> ConfigurationStore:
    require_extra("redis", "redis")
    from tether.platform.configuration.redis_store import RedisConfigurationStore

    settings = metadata.RedisSettings.from_component(component)
    return RedisConfigurationStore(settings.client(), settings.db, settings.address)


def _postgres(component: Component) -> ConfigurationStore:
    require_extra("postgresql", "psycopg")
    from tether.platform.configuration.postgres_store import PostgresConfigurationStore

    conninfo = metadata.required(component, "connectionString")
    table = metadata.required(component, "table")
    try:
        return PostgresConfigurationStore(
            conninfo, table, metadata.text(component, "pgNotifyChannel")
        )
    except ValueError as exc:
        raise ConfigurationConfigError(f"metadata table: {exc}") from exc


#: component type -> store factory
CONFIGURATION_TYPES = ComponentTypes(
    BLOCK,
    "configuration store",
    {
        "configuration.redis": _redis,
        "configuration.postgresql": _postgres,
        "configuration.postgres": _postgres,  # the short name, also accepted
    },
    ConfigurationConfigError,
)


def configuration_store(component: Component) -> ConfigurationStore:
    """The store of one ``configuration.*`` component; raises ConfigurationConfigError."""
    return CONFIGURATION_TYPES.build(component)


def configuration_stores(components: Sequence[Component]) -> Mapping[str, ConfigurationStore]:
    """The app's configuration stores by component name."""
    return {c.name: configuration_store(c) for c in CONFIGURATION_TYPES.of(components)}
