"""What a ``redis://`` URL can say, parsed and checked (options: see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from tether.brokers.base import DEFAULT_PARTITIONS, BrokerConfigError


@dataclass(frozen=True, slots=True)
class RedisSettings:
    default_partitions: int = DEFAULT_PARTITIONS
    #: a member silent this long is presumed dead; also the lifetime of a partition lease
    session_timeout: float = 10.0
    heartbeat_interval: float = 1.0
    #: the longest an idle XREADGROUP blocks (new entries wake it at once)
    block: float = 0.2
    namespace: str = "tether"
    #: approximate MAXLEN on XADD; 0 keeps every entry (trimming can drop unread entries)
    maxlen: int = 0

    def __post_init__(self) -> None:
        if self.default_partitions < 1:
            raise BrokerConfigError("partitions must be at least 1")
        # a rebalance may pause heartbeats for session_timeout / 2 while it drains
        if self.heartbeat_interval <= 0 or 2 * self.heartbeat_interval >= self.session_timeout:
            raise BrokerConfigError(
                "heartbeat_interval must be positive and below half the session_timeout"
            )
        if self.block <= 0:
            raise BrokerConfigError("block must be positive")
        if not self.namespace:
            raise BrokerConfigError("namespace must not be empty")
        if self.maxlen < 0:
            raise BrokerConfigError("maxlen must not be negative")


_OPTIONS = {
    "partitions": ("default_partitions", int),
    "session_timeout": ("session_timeout", float),
    "heartbeat_interval": ("heartbeat_interval", float),
    "block": ("block", float),
    "namespace": ("namespace", str),
    "maxlen": ("maxlen", int),
}


def parse_url(url: str) -> tuple[str, RedisSettings, str]:
    """Split a broker URL into (redis-py URL, settings, URL safe to show)."""
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise BrokerConfigError(f"not a redis:// or rediss:// URL: {url!r}")
    ours: dict[str, Any] = {}
    theirs: list[tuple[str, str]] = []
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name in _OPTIONS:
            attribute, kind = _OPTIONS[name]
            try:
                ours[attribute] = kind(value)
            except ValueError:
                raise BrokerConfigError(f"bad {name}={value!r} in the broker URL") from None
        else:
            theirs.append((name, value))
    settings = RedisSettings(**ours)
    client_url = urlunsplit(parts._replace(query=urlencode(theirs)))
    shown = parts.netloc
    if parts.password is not None:
        shown = shown.replace(":" + parts.password + "@", ":***@", 1)
    return client_url, settings, urlunsplit(parts._replace(netloc=shown))
