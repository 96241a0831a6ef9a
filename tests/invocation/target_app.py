"""A plain aiohttp app that answers every call with what it received (tests/invocation).

The answer's status is ``?status=N`` (default 200); ``/slow`` waits ``?seconds=S`` first
and records the call in ``slow.jsonl`` once it is made. A call of ``/async/...`` or
``/deadletter`` is recorded in ``calls.jsonl`` (path and body); ``?fails=N`` answers 500
until the same path was called N times. Each answer carries the process id,
two Set-Cookie headers and an ``x-answer`` header.
"""

import asyncio
import hashlib
import json
import os
import signal
from pathlib import Path

from aiohttp import web

#: calls of each recorded path so far (this process)
ATTEMPTS: dict[str, int] = {}


async def subscribe(request: web.Request) -> web.StreamResponse:
    return web.json_response([])


async def echo(request: web.Request) -> web.StreamResponse:
    if request.path == "/slow":
        with Path("slow.jsonl").open("a") as f:
            f.write(json.dumps({"id": request.query.get("id")}) + "\n")
        await asyncio.sleep(float(request.query.get("seconds", "5")))
    body = await request.read()
    status = int(request.query.get("status", "200"))
    if request.path.startswith(("/async/", "/deadletter")):
        before = ATTEMPTS.get(request.raw_path, 0)
        ATTEMPTS[request.raw_path] = before + 1
        with Path("calls.jsonl").open("a") as f:
            f.write(json.dumps({"raw_path": request.raw_path, "body": body.decode()}) + "\n")
        if before < int(request.query.get("fails", "0")):
            status = 500
    answer = {
        "method": request.method,
        "raw_path": request.raw_path,
        "headers": [[k, v] for k, v in request.headers.items()],
        "length": len(body),
        "sha256": hashlib.sha256(body).hexdigest(),
        "content_type": request.headers.get("Content-Type"),
        "pid": os.getpid(),
    }
    response = web.json_response(answer, status=status)
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
