"""A plain aiohttp app that answers every call with what it received (tests/invocation).

The answer's status is ``?status=N`` (default 200); ``/slow`` waits ``?seconds=S`` first
and records the call in ``slow.jsonl`` once it is made; ``/flaky`` answers 503 to the first
``?fail=N`` calls with the same ``?id=``. Each answer carries the process id,
two Set-Cookie headers and an ``x-answer`` header.
"""

import asyncio
import hashlib
import json
import os
import signal
from pathlib import Path

from aiohttp import web


async def subscribe(request: web.Request) -> web.StreamResponse:
    return web.json_response([])


FLAKY: dict[str, int] = {}


async def echo(request: web.Request) -> web.StreamResponse:
    if request.path == "/flaky":
        key = request.query.get("id", "")
        FLAKY[key] = FLAKY.get(key, 0) + 1
        if FLAKY[key] <= int(request.query.get("fail", "0")):
            return web.json_response({"calls": FLAKY[key]}, status=503)
    if request.path == "/slow":
        with Path("slow.jsonl").open("a") as f:
            f.write(json.dumps({"id": request.query.get("id")}) + "\n")
        await asyncio.sleep(float(request.query.get("seconds", "5")))
    body = await request.read()
    answer = {
        "method": request.method,
        "raw_path": request.raw_path,
        "headers": [[k, v] for k, v in request.headers.items()],
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": request.headers.get("Content-Type"),
        "pid": os.getpid(),
    }
    response = web.json_response(answer, status=int(request.query.get("status", "200")))
    response.headers["x-answer"] = "yes"
    response.headers.add("Set-Cookie", "a=1")
    response.headers.add("Set-Cookie", "b=2")
    return response


async def main() -> None:
    app = web.Application(client_max_size=8 * 1024 * 1024)
    app.router.add_get("/dapr/subscribe", subscribe)
    app.router.add_route("*", "/{tail:.*}", echo)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", int(os.environ["APP_PORT"])).start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await runner.cleanup()


asyncio.run(main())
