"""Memory a scheduler spends per held (not yet due) event, on the embedded broker.

    .venv/bin/python bench/scheduler_memory.py [COUNT]

Publishes COUNT small delayed events (JSON data of about 70 bytes) due in an hour, starts a
Scheduler, waits until it holds them all and prints the Python allocations (tracemalloc)
per held event. Figures go to docs/delivery.md ("Delayed publish").
"""

from __future__ import annotations

import asyncio
import gc
import sys
import tempfile
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tether.brokers import open_broker
from tether.platform.events import CloudEvent
from tether.platform.pubsub.scheduled import publish_at
from tether.workers.scheduler import Scheduler


async def main(count: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        async with open_broker(f"embedded://{Path(folder) / 'broker.db'}") as broker:
            due = datetime.now(UTC) + timedelta(hours=1)
            events = [
                CloudEvent(type="com.dapr.event.sent", source="app",
                           data={"order": i, "note": "x" * 50},
                           extensions={"topic": "t", "pubsubname": "pubsub"})
                for i in range(count)
            ]
            await publish_at(broker, "t", events, [due] * count)
            del events
            gc.collect()
            tracemalloc.start()
            scheduler = Scheduler(broker)
            await scheduler.start()
            while scheduler.held < count:  # noqa: ASYNC110 - polls a counter
                await asyncio.sleep(0.1)
            gc.collect()
            current, _ = tracemalloc.get_traced_memory()
            print(f"held {scheduler.held} events: {current / count:.0f} bytes per held event")
            await scheduler.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000))
