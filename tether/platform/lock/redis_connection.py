"""A redis-py asyncio client from Dapr's Redis component metadata.

``redisHost`` (``host:port``, required), ``redisUsername``, ``redisPassword``, ``redisDB``
and ``enableTLS``, read as Dapr's Redis components read them. The configuration store uses
the same names, so it builds its client here too.
"""

from __future__ import annotations

from collections.abc import Mapping

import redis.asyncio as aioredis

from tether.platform.components import Component
from tether.platform.errors import ConfigError


class RedisMetadataError(ConfigError):
    """Metadata that names no usable Redis server; the message names the field."""


def redis_options(component: Component) -> Mapping[str, object]:
    """Keyword arguments for ``redis.asyncio.Redis`` (checked, nothing connected yet)."""
    host = component.value("redisHost")
    if not host:
        raise RedisMetadataError("metadata redisHost is required (host:port)")
    name, sep, port_text = host.rpartition(":")
    if not sep or not name or not port_text.isdigit():
        raise RedisMetadataError(f"metadata redisHost {host!r} is not host:port")
    db = component.value("redisDB") or "0"
    if not db.isdigit():
        raise RedisMetadataError(f"metadata redisDB {db!r} must be a number")
    tls = (component.value("enableTLS") or "false").strip().lower()
    if tls not in ("true", "false"):
        raise RedisMetadataError(f"metadata enableTLS {tls!r} must be true or false")
    return {
        "host": name.strip("[]"),
        "port": int(port_text),
        "db": int(db),
        "username": component.value("redisUsername") or None,
        "password": component.value("redisPassword") or None,
        "ssl": tls == "true",
    }


def redis_client(component: Component) -> aioredis.Redis:
    """A client for the component's server (connects lazily, on the first command)."""
    options = redis_options(component)
    return aioredis.Redis(**options)  # type: ignore[arg-type]
