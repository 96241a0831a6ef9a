"""The Kafka backend under the contract suite, against the session's tansu broker."""

from __future__ import annotations

import pytest

from tests.brokers.harness import Harness
from tests.servers import unavailable

#: tansu takes about session_timeout / 2 to complete a group join, so keep it short
SESSION_TIMEOUT_MS = 6000
HEARTBEAT_INTERVAL_MS = 1000


class KafkaHarness(Harness):
    name = "kafka"

    def __init__(self, address: str) -> None:
        self.address = address

    def url(self, **options: int | str) -> str:
        query = {
            "session_timeout_ms": SESSION_TIMEOUT_MS,
            "heartbeat_interval_ms": HEARTBEAT_INTERVAL_MS,
            **options,
        }
        return f"kafka://{self.address}?" + "&".join(f"{k}={v}" for k, v in query.items())

    async def inject_raw(self, topic: str, payload: bytes) -> None:
        """Plain bytes, no CloudEvent headers, as a foreign producer would write them."""
        from aiokafka import AIOKafkaProducer

        producer = AIOKafkaProducer(bootstrap_servers=self.address, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(topic, payload)
        finally:
            await producer.stop()


@pytest.fixture
def kafka_harness(kafka_address: str) -> KafkaHarness:
    try:
        import aiokafka  # noqa: F401
    except ImportError:
        unavailable("aiokafka is not installed: pip install 'tether[kafka]'")
    return KafkaHarness(kafka_address)
