"""A plain aiohttp app for the jobs tests: it records each ``POST /job/{name}``.

Every call is appended to ``jobs.jsonl`` in the working folder (job name, body, content
type, pid). A job whose data is ``{"fail": N}`` is answered 500 to its first N calls (in
this process), every other call 200.
"""

import json
import os
from pathlib import Path

from aiohttp import web

from tests.serving import serve_until_sigterm

#: calls per job name so far (this process)
CALLS: dict[str, int] = {}


async def job(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    body = await request.read()
    calls = CALLS[name] = CALLS.get(name, 0) + 1
    with Path("jobs.jsonl").open("a") as f:
        f.write(json.dumps({
            "name": name, "body": body.decode(), "pid": os.getpid(), "call": calls,
            "contentType": request.headers.get("Content-Type", ""),
        }) + "\n")
    data = json.loads(body) if body else None
    if isinstance(data, dict) and calls <= data.get("fail", 0):
        return web.Response(status=500)
    return web.Response(status=200)


async def subscribe(request: web.Request) -> web.StreamResponse:
    return web.json_response([])


app = web.Application()
app.router.add_get("/dapr/subscribe", subscribe)
app.router.add_post("/job/{name}", job)
serve_until_sigterm(app)
