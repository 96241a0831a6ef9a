"""Small helpers the broker tests share."""

from __future__ import annotations

import asyncio

import pytest

from tether.brokers import Delivery, Subscription
from tether.platform.events import CloudEvent

#: ceiling for waits that include a consumer-group join (tansu: about session_timeout / 2)
WAIT = 60.0


def event(i: int, key: str | None = None, source: str = "/test") -> CloudEvent:
    """A small JSON event numbered ``i``, optionally with a partition key."""
    extensions = {"partitionkey": key} if key is not None else {}
    return CloudEvent(type="test.event", source=source, data={"i": i}, extensions=extensions)


async def take(
    subscription: Subscription, count: int, *, ack: bool = True, wait: float = WAIT
) -> list[Delivery]:
    """The next ``count`` deliveries (acked unless told otherwise); fails after ``wait`` s."""
    got: list[Delivery] = []

    async def run() -> None:
        async for delivery in subscription:
            got.append(delivery)
            if ack:
                await delivery.ack()
            if len(got) >= count:
                return

    await asyncio.wait_for(run(), wait)
    return got


async def nothing_more(subscription: Subscription, seconds: float = 0.5) -> None:
    """Fail if a delivery arrives within ``seconds``."""
    try:
        delivery = await asyncio.wait_for(subscription.__anext__(), seconds)
    except (TimeoutError, StopAsyncIteration):
        return
    pytest.fail(f"unexpected delivery {delivery!r}: {delivery.event!r}")
