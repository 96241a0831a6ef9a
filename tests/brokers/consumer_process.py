"""A consumer in its own process, for crash tests: it consumes TOPIC in GROUP from URL and
appends the id of every event it handled to OUTFILE (one per line, flushed) before acking it.

    python -m tests.brokers.consumer_process URL TOPIC GROUP OUTFILE [HANDLER_SECONDS]
"""

from __future__ import annotations

import asyncio
import sys

from tether.brokers import open_broker


async def consume(url: str, topic: str, group: str, outfile: str, handler_seconds: float) -> None:
    async with open_broker(url) as broker, broker.subscribe(topic, group) as subscription:
        with open(outfile, "a", buffering=1) as out:
            out.write("#ready\n")
            async for delivery in subscription:
                if handler_seconds:
                    await asyncio.sleep(handler_seconds)
                out.write(delivery.event.id + "\n")
                await delivery.ack()


if __name__ == "__main__":
    url, topic, group, outfile = sys.argv[1:5]
    seconds = float(sys.argv[5]) if len(sys.argv) > 5 else 0.0
    asyncio.run(consume(url, topic, group, outfile, seconds))
