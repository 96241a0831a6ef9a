"""A scheduler in its own process, for crash tests: runs a Scheduler on URL and rewrites
STATUSFILE with "<held> <forwarded>" every 50 ms until killed.

    python -m tests.workers.scheduler_process URL STATUSFILE
"""

from __future__ import annotations

import asyncio
import os
import sys

from tether.brokers import open_broker
from tether.workers.scheduler import Scheduler


async def run(url: str, status: str) -> None:
    async with open_broker(url) as broker:
        scheduler = Scheduler(broker)
        await scheduler.start()
        while True:
            temp = status + ".tmp"
            with open(temp, "w") as out:
                out.write(f"{scheduler.held} {scheduler.forwarded}\n")
            os.replace(temp, status)
            await asyncio.sleep(0.05)


if __name__ == "__main__":
    asyncio.run(run(sys.argv[1], sys.argv[2]))
