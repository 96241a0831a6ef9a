"""``tether broker check``: a publish/consume round trip through any broker, timed."""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from dataclasses import dataclass

from tether.brokers import BrokerError, open_broker
from tether.platform.events import CloudEvent, utc_now

CHECK_EVENT_TYPE = "io.tether.broker.check"


@dataclass(frozen=True, slots=True)
class CheckReport:
    url: str
    count: int
    connect_ms: float
    first_delivery_ms: float
    latencies_ms: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {
            "broker": self.url,
            "count": self.count,
            "connect_ms": round(self.connect_ms, 3),
            "first_delivery_ms": round(self.first_delivery_ms, 3),
            "latency_ms": {k: round(v, 3) for k, v in self.latencies_ms.items()},
        }


async def check_broker(url: str, count: int, timeout: float) -> CheckReport:
    """Publish ``count`` events one at a time and wait for each to come back.

    The first round trip includes the consumer group join (seconds on Kafka), so it is
    reported apart and the latency figures cover the others."""
    async with asyncio.timeout(timeout):
        broker = open_broker(url)
        started = time.perf_counter()
        await broker.connect()
        connect_ms = (time.perf_counter() - started) * 1000
        try:
            run = uuid.uuid4().hex[:12]
            topic, group = f"tether.check.{run}", f"tether-check-{run}"
            await broker.create_topic(topic, 1)
            round_trips: list[float] = []
            async with broker.subscribe(topic, group) as subscription:
                for i in range(count + 1):
                    sent = CloudEvent(
                        type=CHECK_EVENT_TYPE, source="tether/cli", time=utc_now(), data={"n": i}
                    )
                    begun = time.perf_counter()
                    await broker.publish(topic, sent)
                    delivery = await anext(subscription)
                    await delivery.ack()
                    if delivery.event.id != sent.id:
                        raise BrokerError(
                            f"expected event {sent.id}, received {delivery.event.id}: "
                            "the check topic is not fresh or the broker reordered"
                        )
                    round_trips.append((time.perf_counter() - begun) * 1000)
        finally:
            await broker.close()
    first, rest = round_trips[0], round_trips[1:]
    return CheckReport(broker.url, count, connect_ms, first, percentiles(rest))


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    if len(ordered) == 1:
        only = ordered[0]
        return {"p50": only, "p90": only, "p99": only, "max": only}
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {"p50": cuts[49], "p90": cuts[89], "p99": cuts[98], "max": ordered[-1]}
