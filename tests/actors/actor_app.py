"""A plain aiohttp app hosting the actor type ``Counter`` with Dapr's host contract.

``GET /dapr/config`` declares the type (idle timeout 3 s, scan every 0.5 s). Each call is
recorded in ``calls.jsonl`` (kind, actor id, method or name, pid, start and end times):

- method ``incr``: reads ``count`` through the sidecar's actor state API, waits 50 ms
  (so overlapping turns would show), writes ``count + 1`` and answers it;
- method ``get``: answers ``count``; method ``boom`` answers 500;
- ``PUT .../method/remind/{name}`` and ``.../method/timer/{name}`` record a fire;
- ``DELETE /actors/Counter/{id}`` records a deactivation.
"""

import asyncio
import json
import os
import time
from pathlib import Path

from aiohttp import ClientSession, web

from tests.serving import serve_until_sigterm

SIDECAR = f"http://127.0.0.1:{os.environ['DAPR_HTTP_PORT']}/v1.0/actors/Counter"
session: ClientSession | None = None


def record(**fields: object) -> None:
    with Path("calls.jsonl").open("a") as f:
        f.write(json.dumps({**fields, "pid": os.getpid()}) + "\n")


async def config(request: web.Request) -> web.Response:
    return web.json_response({"entities": ["Counter"], "actorIdleTimeout": "3s",
                              "actorScanInterval": "0.5s", "drainRebalancedActors": True})


async def count_of(actor_id: str) -> int:
    assert session is not None
    async with session.get(f"{SIDECAR}/{actor_id}/state/count") as answer:
        return int(await answer.text()) if answer.status == 200 else 0


async def method(request: web.Request) -> web.Response:
    actor_id, name = request.match_info["id"], request.match_info["method"]
    start = time.time()
    answer: object = None
    status = 200
    if name == "incr":
        value = await count_of(actor_id) + 1
        await asyncio.sleep(0.05)
        assert session is not None
        ops = [{"operation": "upsert", "request": {"key": "count", "value": value}}]
        async with session.post(f"{SIDECAR}/{actor_id}/state", json=ops) as saved:
            assert saved.status == 204, await saved.text()
        answer = value
    elif name == "get":
        answer = await count_of(actor_id)
    elif name == "boom":
        status = 500
        answer = {"error": "boom"}
    record(kind="method", id=actor_id, name=name, start=start, end=time.time(),
           body=(await request.read()).decode())
    return web.json_response(answer, status=status)


async def fire(request: web.Request) -> web.Response:
    body = await request.json()
    record(kind=request.match_info["kind"], id=request.match_info["id"],
           name=request.match_info["name"], start=time.time(), end=time.time(), body=body)
    return web.Response(status=200)


async def deactivate(request: web.Request) -> web.Response:
    record(kind="deactivate", id=request.match_info["id"], start=time.time(), end=time.time())
    return web.Response(status=200)


async def open_session(app: web.Application) -> None:
    global session
    session = ClientSession()


async def close_session(app: web.Application) -> None:
    if session is not None:
        await session.close()


app = web.Application()
app.on_startup.append(open_session)
app.on_cleanup.append(close_session)
app.router.add_get("/dapr/config", config)
app.router.add_get("/healthz", lambda request: web.Response())
app.router.add_put("/actors/Counter/{id}/method/{kind:remind|timer}/{name}", fire)
app.router.add_put("/actors/Counter/{id}/method/{method}", method)
app.router.add_delete("/actors/Counter/{id}", deactivate)
serve_until_sigterm(app)
