"""The app test_worker.py runs under ``tether worker``: records "pid event-id" per handled
event to the file named by ``TETHER_SAMPLE_OUT``."""

from __future__ import annotations

import asyncio
import os

import tether
from tether.platform.events import CloudEvent

app = tether.App("sample")


@app.subscribe(topic="work", max_concurrency=4)
async def work(event: CloudEvent) -> None:
    await asyncio.sleep(0.02)  # some work, so a child can die with events in flight
    line = f"{os.getpid()} {event.id}\n".encode()
    fd = os.open(os.environ["TETHER_SAMPLE_OUT"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)  # one O_APPEND write: lines of concurrent children never mix
    finally:
        os.close(fd)
