"""What a ``kafka://`` URL can say, parsed and checked (options: see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from aiokafka.helpers import create_ssl_context

from tether.brokers.base import DEFAULT_PARTITIONS, BrokerConfigError

DEFAULT_PORT = 9092
_SECURITY_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
_SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_COMPRESSION = ("none", "gzip", "snappy", "lz4", "zstd")


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """Everything a ``kafka://`` URL can say (see the module docstring)."""

    bootstrap_servers: tuple[str, ...]
    partitions: int = DEFAULT_PARTITIONS
    replication_factor: int = 1
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    rebalance_timeout_ms: int | None = None
    commit_interval_ms: int = 50
    linger_ms: int = 5
    max_batch_size: int = 1_048_576
    max_request_size: int = 1_048_576
    compression_type: str = "none"
    fetch_max_wait_ms: int = 100
    fetch_max_bytes: int = 52_428_800
    max_partition_fetch_bytes: int = 1_048_576
    max_poll_records: int = 2_000
    request_timeout_ms: int = 40_000
    connect_timeout_ms: int = 10_000
    client_id: str = "tether"
    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str = "PLAIN"
    username: str | None = field(default=None, repr=False)
    password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not self.bootstrap_servers:
            raise BrokerConfigError("kafka:// needs at least one host:port")
        for name in ("partitions", "replication_factor", "session_timeout_ms",
                     "heartbeat_interval_ms", "commit_interval_ms", "max_batch_size",
                     "max_poll_records", "request_timeout_ms", "connect_timeout_ms"):
            if getattr(self, name) < 1:
                raise BrokerConfigError(f"kafka:// option {name} must be at least 1")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise BrokerConfigError("heartbeat_interval_ms must be below session_timeout_ms")
        if self.security_protocol not in _SECURITY_PROTOCOLS:
            raise BrokerConfigError(f"security_protocol must be one of {_SECURITY_PROTOCOLS}")
        if self.sasl_mechanism not in _SASL_MECHANISMS:
            raise BrokerConfigError(f"sasl_mechanism must be one of {_SASL_MECHANISMS}")
        if self.compression_type not in _COMPRESSION:
            raise BrokerConfigError(f"compression_type must be one of {_COMPRESSION}")

    @property
    def rebalance_timeout(self) -> int:
        return self.rebalance_timeout_ms or self.session_timeout_ms

    def client_options(self) -> dict[str, Any]:
        """Connection options shared by the producer, the consumers and the admin client."""
        options: dict[str, Any] = {
            "bootstrap_servers": list(self.bootstrap_servers),
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
            "security_protocol": self.security_protocol,
        }
        if "SSL" in self.security_protocol:
            options["ssl_context"] = create_ssl_context()
        if self.security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.username
            options["sasl_plain_password"] = self.password
        return options

    def public_url(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"kafka://{user}{','.join(self.bootstrap_servers)}"


def parse_url(url: str) -> KafkaSettings:
    """``kafka://host:port[,host:port]?option=value`` -> settings; bad input is a
    BrokerConfigError naming the offending part."""
    parts = urlsplit(url)
    if parts.scheme != "kafka":
        raise BrokerConfigError(f"not a kafka:// URL: {url!r}")
    netloc = parts.netloc
    username = password = None
    if "@" in netloc:
        userinfo, netloc = netloc.rsplit("@", 1)
        user, _, secret = userinfo.partition(":")
        username, password = unquote(user), (unquote(secret) if secret else None)
    servers = []
    for host in filter(None, (h.strip() for h in netloc.split(","))):
        servers.append(host if ":" in host.rsplit("]", 1)[-1] else f"{host}:{DEFAULT_PORT}")
    known = {f.name: f for f in fields(KafkaSettings)}
    options: dict[str, Any] = {}
    for name, value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in known or name in ("bootstrap_servers", "username", "password"):
            raise BrokerConfigError(f"unknown kafka:// option {name!r} in {url!r}")
        if name in ("client_id", "compression_type", "security_protocol", "sasl_mechanism"):
            options[name] = value
            continue
        try:
            options[name] = int(value)
        except ValueError:
            raise BrokerConfigError(
                f"kafka:// option {name} must be an integer, got {value!r}"
            ) from None
    return KafkaSettings(
        bootstrap_servers=tuple(servers), username=username, password=password, **options
    )
