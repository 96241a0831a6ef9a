"""The bare HTTP servers of bench/http_floor.py: each reads the request body and answers 204.

    python bench/_floor_servers.py aiohttp|aiohttp-uvloop|uvicorn PORT
    granian --interface rsgi|asgi --working-dir bench ... _floor_servers:rsgi_app|asgi_app

Nothing else happens per request, so the CPU one costs is the floor of the HTTP stack: what
the sidecar would pay with no Dapr logic at all. Every server runs in its own process.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from typing import Any

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
NO_CONTENT_START = {"type": "http.response.start", "status": 204, "headers": []}
NO_CONTENT_BODY = {"type": "http.response.body", "body": b""}


async def asgi_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Raw ASGI (uvicorn, granian --interface asgi): the body read to its end, then 204."""
    if scope["type"] != "http":  # lifespan and websocket: not served
        return
    while (await receive()).get("more_body"):
        pass
    await send(NO_CONTENT_START)
    await send(NO_CONTENT_BODY)


async def rsgi_app(scope: Any, protocol: Any) -> None:
    """RSGI (granian --interface rsgi, its native interface)."""
    await protocol()  # the whole body
    protocol.response_empty(204, [])


def serve_aiohttp(port: int, uvloop: bool) -> None:
    import asyncio

    from aiohttp import web

    async def answer(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=204)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    loop: asyncio.AbstractEventLoop | None = None
    if uvloop:
        import uvloop as uv

        loop = uv.new_event_loop()
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=loop)


def serve_uvicorn(port: int) -> None:
    import uvicorn

    uvicorn.run(asgi_app, host="127.0.0.1", port=port, loop="uvloop", http="httptools",
                ws="none", lifespan="off", access_log=False, log_level="warning")


def main() -> None:
    name, port = sys.argv[1], int(sys.argv[2])
    if name in ("aiohttp", "aiohttp-uvloop"):
        serve_aiohttp(port, uvloop=name == "aiohttp-uvloop")
    elif name == "uvicorn":
        serve_uvicorn(port)
    else:
        raise SystemExit(f"unknown server {name!r}")


if __name__ == "__main__":
    main()
