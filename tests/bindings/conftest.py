"""Servers the bindings tests share: the machine's RabbitMQ (its URL, a channel to look
at queues with, and a queue name of the test's own, deleted after it)."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator

import aio_pika
import pytest
from aio_pika.abc import AbstractChannel

from tests.servers import unavailable

RABBITMQ_URL = os.environ.get("TETHER_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/")


@pytest.fixture
async def channel() -> AsyncIterator[AbstractChannel]:
    """A plain channel to look at (and clean up) the queues the tests use."""
    try:
        connection = await aio_pika.connect(RABBITMQ_URL, timeout=5)
    except Exception as exc:  # whatever the reason, the server is not there
        unavailable(f"RabbitMQ is not reachable at {RABBITMQ_URL}: {exc!r}")
    async with connection:
        yield await connection.channel()


@pytest.fixture
async def queue(channel: AbstractChannel) -> AsyncIterator[str]:
    name = f"tether-test-{uuid.uuid4().hex[:10]}"
    yield name
    await channel.queue_delete(name)
