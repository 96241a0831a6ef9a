"""A Redis subscription closes even when a cancel of its background tasks is lost.

On Python 3.11, redis-py writes every command through ``asyncio.wait_for`` (it has a
socket_timeout by default), and 3.11's wait_for drops a cancel that lands in the loop turn the
write completes. close() cancels the acker; if that cancel is lost the acker went back to
waiting for acks nobody sends and close() waited for it for ever (seen as a hang of
test_graceful_close_drains_in_flight_deliveries[redis] whenever the timing shifted). Here the
acker's flush loses the cancel every time, the way wait_for does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from tests.brokers.harness_redis import RedisHarness
from tests.brokers.helpers import event, nothing_more, take
from tether.brokers.redis import RedisBroker

WAIT = 30.0


@pytest.fixture
async def broker(redis_harness: RedisHarness) -> AsyncIterator[RedisBroker]:
    broker = RedisBroker(redis_harness.url())
    await broker.connect()
    yield broker
    await broker.close()


async def test_close_finishes_when_the_ackers_cancel_is_lost(
    broker: RedisBroker, redis_harness: RedisHarness
) -> None:
    topic, group = redis_harness.topic(), redis_harness.group()
    await broker.create_topic(topic, 1)
    await broker.publish(topic, event(0))
    subscription = broker.subscribe(topic, group)
    await subscription.start()
    [delivery] = await take(subscription, 1, ack=False)

    real_send = broker.send_packed
    parked = asyncio.Event()

    async def send_losing_a_cancel(payload: bytes, replies: int) -> None:
        await real_send(payload, replies)
        task = asyncio.current_task()
        if task is not None and task.get_name().startswith("ack:") and not parked.is_set():
            parked.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                pass  # the write is done and the cancel is dropped, as 3.11's wait_for does

    broker.send_packed = send_losing_a_cancel  # type: ignore[method-assign]
    await delivery.ack()
    await asyncio.wait_for(parked.wait(), WAIT)  # the acker is inside its flush

    # (not asyncio.timeout: before the fix cancel_task also swallowed the timeout's cancel)
    closing = asyncio.create_task(subscription.close())
    done, _ = await asyncio.wait({closing}, timeout=WAIT)
    if not done:
        closing.cancel()
        await asyncio.wait({closing}, timeout=WAIT)
        pytest.fail("close() did not return: it waits for an acker that lost its cancel")
    closing.result()
    assert subscription.closed
    # the ack was written before the cancel: the group gets nothing again
    async with broker.subscribe(topic, group) as again:
        await nothing_more(again, 1.5)
