"""``embedded://PATH``: the default broker, a durable log in one SQLite file on this machine.

It is a :class:`~tether.brokers.log.store.LogStore` (:class:`SqliteStore`) under the shared
:class:`~tether.brokers.log.broker.LogBroker`, so groups, leases, rebalancing and commits work
exactly as for ``memory://``; only the storage differs. Several processes may open one file:
they share topics and consumer groups (see docs/brokers-embedded.md).

URLs::

    embedded://.tether/broker.db              relative to the working directory
    embedded:///var/lib/tether/broker.db      absolute (three slashes)
    embedded://broker.db?partitions=8&synchronous=FULL

The parent directory is created on connect. Query options:

``partitions`` (4)
    partitions of a topic created on first use (``create_topic`` names its own count).
``session_timeout`` (10) / ``heartbeat_interval`` (1)
    seconds; a member silent for ``session_timeout`` is presumed dead and its partitions
    move to the survivors, which redeliver what it had not acknowledged.
``commit_interval`` (0.05)
    seconds between writes of acknowledged offsets.
``poll_interval`` (0.5)
    the longest an idle fetcher sleeps; appends wake it sooner (at once in this process,
    within ``watch_interval`` from other processes).
``watch_interval`` (0.002)
    seconds between checks for appends by other processes, made only while a consumer waits.
``synchronous`` (NORMAL)
    SQLite's ``PRAGMA synchronous``: ``NORMAL`` (in WAL mode, an accepted event survives a
    crash of any process; an OS crash or power cut may lose the last moments), ``FULL``
    (fsync on every publish: also survives power loss), ``EXTRA`` or ``OFF``.
``busy_timeout`` (10)
    seconds to wait for another process's write transaction before failing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote

from tether.brokers.base import BrokerConfigError
from tether.brokers.embedded.schema import SYNCHRONOUS_LEVELS
from tether.brokers.embedded.store import (
    DEFAULT_BUSY_TIMEOUT,
    DEFAULT_SYNCHRONOUS,
    DEFAULT_WATCH_INTERVAL,
    SqliteStore,
)
from tether.brokers.log.broker import LogBroker, LogSettings

SCHEME = "embedded://"
_NUMBERS = ("partitions", "session_timeout", "heartbeat_interval", "commit_interval",
            "poll_interval", "busy_timeout", "watch_interval")


@dataclass(frozen=True, slots=True)
class EmbeddedConfig:
    """What an ``embedded://`` URL says."""

    path: Path
    settings: LogSettings = field(default_factory=LogSettings)
    synchronous: str = DEFAULT_SYNCHRONOUS
    busy_timeout: float = DEFAULT_BUSY_TIMEOUT
    watch_interval: float = DEFAULT_WATCH_INTERVAL

    def store(self) -> SqliteStore:
        return SqliteStore(self.path, synchronous=self.synchronous,
                           busy_timeout=self.busy_timeout, watch_interval=self.watch_interval)


def from_url(url: str) -> LogBroker:
    config = parse_url(url)
    return LogBroker(config.store(), url, config.settings)


def parse_url(url: str) -> EmbeddedConfig:
    if not url.startswith(SCHEME):
        raise BrokerConfigError(f"not an embedded broker URL: {url!r}")
    location, _, query = url[len(SCHEME):].partition("?")
    location = unquote(location.partition("#")[0])
    if not location or location.endswith("/"):
        raise BrokerConfigError(f"{url!r} names no file: use embedded://PATH/TO/broker.db")
    numbers: dict[str, float] = {}
    synchronous = DEFAULT_SYNCHRONOUS
    for name, value in parse_qsl(query.partition("#")[0], keep_blank_values=True):
        if name in _NUMBERS:
            numbers[name] = _positive(name, value)
        elif name == "synchronous":
            synchronous = value.upper()
            if synchronous not in SYNCHRONOUS_LEVELS:
                raise BrokerConfigError(
                    f"synchronous={value!r}: use one of {', '.join(SYNCHRONOUS_LEVELS)}"
                )
        else:
            known = ", ".join([*_NUMBERS, "synchronous"])
            raise BrokerConfigError(f"unknown embedded broker option {name!r}; known: {known}")
    defaults = LogSettings()
    partitions = numbers.get("partitions", defaults.default_partitions)
    if partitions != int(partitions):
        raise BrokerConfigError(f"partitions must be a whole number, got {partitions}")
    settings = LogSettings(
        default_partitions=int(partitions),
        session_timeout=numbers.get("session_timeout", defaults.session_timeout),
        heartbeat_interval=numbers.get("heartbeat_interval", defaults.heartbeat_interval),
        commit_interval=numbers.get("commit_interval", defaults.commit_interval),
        poll_interval=numbers.get("poll_interval", defaults.poll_interval),
    )
    return EmbeddedConfig(
        path=Path(location).expanduser().absolute(),
        settings=settings,
        synchronous=synchronous,
        busy_timeout=numbers.get("busy_timeout", DEFAULT_BUSY_TIMEOUT),
        watch_interval=numbers.get("watch_interval", DEFAULT_WATCH_INTERVAL),
    )


def _positive(name: str, value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise BrokerConfigError(f"{name}={value!r} is not a number") from None
    if not number > 0 or number == float("inf"):
        raise BrokerConfigError(f"{name} must be a positive number, got {value!r}")
    return number


__all__ = ["EmbeddedConfig", "SqliteStore", "from_url", "parse_url"]
