"""A second process on the same embedded broker file, for tests/brokers/test_embedded.py.

    python -m tests.brokers.embedded_child consume URL TOPIC GROUP OUTFILE [hold]
        join GROUP; append "ID TIME" (time.time() on receipt) to OUTFILE per delivery, then
        ack it, or with ``hold`` never settle it; "#ready" once subscribed
    python -m tests.brokers.embedded_child publish-and-die URL TOPIC COUNT
        publish COUNT events (batches, then single ones), print each id once its publish
        returned, then SIGKILL itself
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time

from tether.brokers import Delivery, open_broker
from tether.platform.events import CloudEvent


async def consume(url: str, topic: str, group: str, outfile: str, hold: bool) -> None:
    held: list[Delivery] = []  # keep unacked deliveries referenced until we are killed
    async with open_broker(url) as broker, broker.subscribe(topic, group) as subscription:
        with open(outfile, "a", buffering=1) as out:
            out.write("#ready\n")
            async for delivery in subscription:
                out.write(f"{delivery.event.id} {time.time()!r}\n")
                if hold:
                    held.append(delivery)
                else:
                    await delivery.ack()


async def publish_and_die(url: str, topic: str, count: int) -> None:
    events = [CloudEvent(type="test.crash", source="/child", data={"i": i}) for i in range(count)]
    half = count // 2
    async with open_broker(url) as broker:
        for start in range(0, half, 50):
            batch = events[start:min(start + 50, half)]
            await broker.publish_batch(topic, batch)
            print("\n".join(e.id for e in batch), flush=True)
        for event in events[half:]:
            await broker.publish(topic, event)
            print(event.id, flush=True)
        # no close(), no flush: the process dies the hard way right after the last publish
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    mode, args = sys.argv[1], sys.argv[2:]
    if mode == "consume":
        url, topic, group, outfile = args[:4]
        asyncio.run(consume(url, topic, group, outfile, hold=args[4:] == ["hold"]))
    elif mode == "publish-and-die":
        asyncio.run(publish_and_die(args[0], args[1], int(args[2])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")
