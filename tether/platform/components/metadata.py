"""Component metadata read once, the same way for every block: text, booleans, whole numbers,
durations and Redis connection settings.

Dapr decodes a component's metadata into typed settings with the keys matched
case-insensitively; so does this module. Every reader raises :class:`MetadataError` naming
the field and the problem; a block's registry adds the component's name and file
(:class:`~tether.platform.components.registry.ComponentTypes`), so the sidecar stops at
start with a message that points at the line to fix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from tether.platform.components.model import Component, SecretKeyRef
from tether.platform.errors import ConfigError, TetherError

if TYPE_CHECKING:
    import redis.asyncio as aioredis


class MetadataError(ConfigError):
    """One metadata field that cannot be used: ``metadata <field> <problem>``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"metadata {field} {problem}")
        self.field = field
        self.problem = problem


class DurationError(TetherError, ValueError):
    """Text that is not a duration; the message shows what one looks like."""


_DURATION_PART = re.compile(r"([0-9]+\.?[0-9]*|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_NUMBER = re.compile(r"[0-9]+\.?[0-9]*|\.[0-9]+")
_UNIT_SECONDS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
    "h": 3600.0,
}
# strconv.ParseBool's spellings, which Dapr's metadata decoding uses
_TRUE = ("true", "t", "1")
_FALSE = ("false", "f", "0")
# utils.IsTruthy's, which Dapr uses for per-call flags (rawPayload, outbox.projection)
_TRUTHY = ("1", "true", "t", "y", "yes", "on")


def is_truthy(value: str | None) -> bool:
    """A per-call metadata flag as Dapr reads it: anything but a truthy word is false."""
    return value is not None and value.strip().lower() in _TRUTHY


def _digits(text: str) -> bool:
    """ASCII digits only: str.isdigit() also takes "²" (which int() refuses) and "٣"."""
    return text.isascii() and text.isdigit()


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``90s``, ``1m30s``, ``2h``, ``500ms``, ``1.5h``; units ns,
    us, µs, ms, s, m, h) or a plain number of seconds (``30``, ``2.5``), as Dapr users
    write them. Never negative; raises DurationError."""
    value = text.strip().removeprefix("+")
    if value.startswith("-"):
        raise DurationError(f"{text!r} is negative")
    if _NUMBER.fullmatch(value):
        seconds = float(value)
    else:
        seconds, position = 0.0, 0
        for match in _DURATION_PART.finditer(value):
            if match.start() != position:
                break
            seconds += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            position = match.end()
        if not value or position != len(value):
            raise DurationError(f"{text!r} is not a duration like 5s, 1m30s or 500ms")
    if not math.isfinite(seconds):
        raise DurationError(f"{text!r} is too long")
    return seconds


def text(component: Component, field: str) -> str | None:
    """The field's plain value (stripped), None when unset or empty. A secretKeyRef left
    unresolved is an error: the sidecar resolves references before any block reads them."""
    wanted = field.lower()
    for name, value in component.metadata.items():
        if name.lower() != wanted:
            continue
        if isinstance(value, SecretKeyRef):
            raise MetadataError(name, "must be a plain value, not a secretKeyRef (a secret "
                                      "store cannot depend on one; elsewhere it is resolved "
                                      "first)")
        return value.strip() or None
    return None


def required(component: Component, field: str, hint: str = "") -> str:
    value = text(component, field)
    if value is None:
        raise MetadataError(field, f"is required{f' ({hint})' if hint else ''}")
    return value


def paired(component: Component, first: str, second: str, error: type[ConfigError],
           problem: str) -> tuple[str, str] | None:
    """Two plain values that only work together (a pubsub and its topic): both, or None
    when neither is set; when only one is, ``error`` naming the component and ``problem``."""
    a, b = component.value(first) or "", component.value(second) or ""
    if not a and not b:
        return None
    if not a or not b:
        raise error(f"{component.block} component {component.name!r}: {first} and {second} "
                    f"{problem}")
    return a, b


def boolean(component: Component, field: str, default: bool = False) -> bool:
    value = text(component, field)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise MetadataError(field, f"must be true or false, not {value!r}")


def integer(component: Component, field: str, *, minimum: int) -> int | None:
    value = text(component, field)
    if value is None:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", value) or int(value) < minimum:
        raise MetadataError(field, f"{value!r} must be a whole number >= {minimum}")
    return int(value)


def duration(component: Component, field: str, default: float) -> float:
    """A positive duration in seconds (see :func:`parse_duration`); ``default`` if unset."""
    value = text(component, field)
    if value is None:
        return default
    try:
        seconds = parse_duration(value)
    except DurationError as exc:
        raise MetadataError(field, str(exc)) from None
    if seconds <= 0:
        raise MetadataError(field, f"{value!r} must be a positive duration like 20s")
    return seconds


#: connections one Redis component's client opens at most
REDIS_MAX_CONNECTIONS = 100
#: how long connecting to Redis may take (an unreachable host fails at start, not minutes later)
REDIS_CONNECT_TIMEOUT = 5.0
#: how often a command is retried on a broken connection (with a backoff under a second)
REDIS_RETRIES = 3


@dataclass(frozen=True, slots=True)
class RedisSettings:
    """Where a Redis component connects: Dapr's ``redisHost`` (``host:port``, required),
    ``redisUsername``, ``redisPassword``, ``redisDB`` and ``enableTLS``."""

    host: str
    port: int
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False

    @classmethod
    def from_component(cls, component: Component) -> RedisSettings:
        address = required(component, "redisHost", "host:port")
        host, sep, port = address.rpartition(":")
        if not sep or not host or not _digits(port) or not 0 < int(port) < 65536:
            raise MetadataError("redisHost", f"{address!r} is not host:port")
        db = text(component, "redisDB") or "0"
        if not _digits(db):
            raise MetadataError("redisDB", f"{db!r} must be a number")
        return cls(
            host=host.strip("[]"),
            port=int(port),
            db=int(db),
            username=text(component, "redisUsername"),
            password=text(component, "redisPassword"),
            tls=boolean(component, "enableTLS"),
        )

    @property
    def url(self) -> str:
        """A ``redis://`` (``rediss://`` with TLS) URL with the credentials quoted."""
        user = quote(self.username or "", safe="")
        auth = f"{user}:{quote(self.password, safe='')}@" if self.password else (
            f"{user}@" if user else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{auth}{host}:{self.port}/{self.db}"

    @property
    def address(self) -> str:
        """``host:port``, for messages (no credentials)."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def client(self) -> aioredis.Redis:
        """A redis-py asyncio client over a blocking pool of at most
        :data:`REDIS_MAX_CONNECTIONS` (connects lazily, on the first command). Past that
        many calls in flight a call waits for a free connection, where redis-py's default
        pool fails with "Too many connections". redis-py is the ``redis`` extra, imported
        only here."""
        import redis.asyncio as aioredis
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff

        connection_class: type[aioredis.Connection] = (
            aioredis.SSLConnection if self.tls else aioredis.Connection
        )
        pool = aioredis.BlockingConnectionPool(
            connection_class=connection_class, max_connections=REDIS_MAX_CONNECTIONS,
            host=self.host, port=self.port, db=self.db, username=self.username,
            password=self.password, socket_connect_timeout=REDIS_CONNECT_TIMEOUT,
            # a pooled connection a server restart closed is replaced on the next call, as
            # redis-py's own client does (a pool built here gets no retry otherwise)
            retry=Retry(ExponentialBackoff(), REDIS_RETRIES),
        )
        return aioredis.Redis.from_pool(pool)  # the client closes the pool
