"""A scheduler in its own process, for crash tests: runs a Scheduler on URL (schedule topic
TOPIC, group GROUP) and rewrites STATUSFILE with "<held> <forwarded>" every 50 ms until killed.

    python -m tests.workers.scheduler_process URL TOPIC GROUP STATUSFILE
"""

from __future__ import annotations

import asyncio
import os
import sys

from tether.brokers import open_broker
from tether.workers.scheduler import Scheduler, SchedulerOptions


async def run(url: str, topic: str, group: str, status: str) -> None:
    async with open_broker(url) as broker:
        scheduler = Scheduler(broker, SchedulerOptions(topic=topic, group=group))
        await scheduler.start()
        while True:
            temp = status + ".tmp"
            with open(temp, "w") as out:
                out.write(f"{scheduler.held} {scheduler.forwarded}\n")
            os.replace(temp, status)
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:5]))
