"""The app test_worker_traces.py runs under ``tether worker`` (and in process): a handler of
``orders`` that publishes ``shipments``, whose handler writes each event's id to the file
named by ``TETHER_TRACED_OUT``."""

from __future__ import annotations

import os

import tether
from tether.platform.events import CloudEvent

app = tether.App("traced")


@app.subscribe(pubsub="pubsub", topic="orders")
async def orders(event: CloudEvent) -> None:
    await app.publish("pubsub", "shipments", {"order": event.id})


@app.subscribe(pubsub="pubsub", topic="shipments")
async def shipments(event: CloudEvent) -> None:
    with open(os.environ["TETHER_TRACED_OUT"], "a") as out:
        out.write(f"{event.id} {event.traceparent}\n")
