"""A plain aiohttp app for the bindings tests: it records each input binding event.

Every POST is appended to ``events.jsonl`` in the working folder (path, headers, body,
pid, attempt). The answer depends on the body: ``retry:N:...`` answers ``{"status":
"RETRY"}`` until the same body came N times, ``drop:...`` answers ``{"status": "DROP"}``,
anything else 200. ``OPTIONS /unwanted`` answers 404 (Dapr's "not subscribed").
"""

import json
import os
from pathlib import Path

from aiohttp import web

from tests.serving import serve_until_sigterm

#: deliveries of each body so far (this process)
ATTEMPTS: dict[bytes, int] = {}


async def subscribe(request: web.Request) -> web.StreamResponse:
    return web.json_response([])


async def options(request: web.Request) -> web.StreamResponse:
    return web.Response(status=404 if request.path == "/unwanted" else 200)


async def event(request: web.Request) -> web.StreamResponse:
    body = await request.read()
    attempt = ATTEMPTS[body] = ATTEMPTS.get(body, 0) + 1
    with Path("events.jsonl").open("a") as f:
        f.write(json.dumps({
            "path": request.path, "headers": dict(request.headers), "body": body.decode(),
            "pid": os.getpid(), "attempt": attempt,
        }) + "\n")
    text = body.decode(errors="replace")
    if text.startswith("retry:") and attempt < int(text.split(":")[1]):
        return web.json_response({"status": "RETRY"})
    if text.startswith("drop:"):
        return web.json_response({"status": "DROP"})
    return web.Response(status=200)


app = web.Application()
app.router.add_get("/dapr/subscribe", subscribe)
app.router.add_route("OPTIONS", "/{tail:.*}", options)
app.router.add_post("/{tail:.*}", event)
serve_until_sigterm(app)
