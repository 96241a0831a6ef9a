"""A tiny app for tests/platform/test_scaling.py, started by ``tether run``.

``python scaling_app.py TOPIC DELAY``: subscribes (programmatically) to pubsub/TOPIC and
writes its pid to app.pid (so a test can kill its process group). For every event it
appends the event's ``n`` to received.txt when the request arrives and to handled.txt after
DELAY seconds of "work". Events are worked on one at a time, so an app's pace is bounded
and the sidecar's concurrent deliveries queue up in it: received but not handled is what
the app was in the middle of when it died or stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

from aiohttp import web

TOPIC = sys.argv[1]
DELAY = float(sys.argv[2])
RECEIVED = Path("received.txt")
HANDLED = Path("handled.txt")
WORKING = asyncio.Lock()


def note(path: Path, n: int) -> None:
    # one short append per event: a SIGKILL leaves whole lines only
    with path.open("a") as out:
        out.write(f"{n}\n")


async def subscribe(request: web.Request) -> web.Response:
    return web.json_response([{"pubsubname": "pubsub", "topic": TOPIC, "route": "/events"}])


async def handle(request: web.Request) -> web.Response:
    n = int((await request.json())["data"]["n"])
    note(RECEIVED, n)
    async with WORKING:
        await asyncio.sleep(DELAY)
        note(HANDLED, n)
    return web.json_response({"status": "SUCCESS"})


async def main() -> None:
    app = web.Application()
    app.router.add_get("/dapr/subscribe", subscribe)
    app.router.add_post("/events", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["APP_PORT"])).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


if __name__ == "__main__":
    Path("app.pid").write_text(str(os.getpid()))
    asyncio.run(main())
