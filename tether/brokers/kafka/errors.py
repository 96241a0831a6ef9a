"""aiokafka errors as the broker errors Tether promises."""

from __future__ import annotations

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from tether.brokers.base import BrokerError, BrokerUnavailableError


def unavailable(what: str, exc: BaseException) -> BrokerUnavailableError:
    return BrokerUnavailableError(f"{what}: {type(exc).__name__}: {exc}")


def is_unavailable(exc: KafkaError) -> bool:
    """Whether the error is the broker's or the network's (not one record's)."""
    return isinstance(exc, (KafkaConnectionError, KafkaTimeoutError)) or bool(exc.retriable)


def publish_error(topic: str, exc: KafkaError) -> BrokerError:
    if is_unavailable(exc):
        return unavailable(f"publishing to {topic!r} failed", exc)
    return BrokerError(f"publishing to {topic!r} failed: {type(exc).__name__}: {exc}")
