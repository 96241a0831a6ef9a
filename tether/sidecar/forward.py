"""Calls only the main process of a sidecar can answer, forwarded to it by an API process.

With ``tether run --api-processes N`` the sidecar's HTTP API is served by several processes
sharing the port (docs/running.md). The main one also runs the subscriptions, the
schedulers and the app channel and holds the sidecar-wide values: ``/v1.0/metadata`` (the
subscriptions, the values PUT there), ``/v1.0/shutdown`` and the configuration
subscriptions (their changes are pushed to the app from there, and an unsubscribe has to
find them). An API process sends those calls, as they came, to the main process over its
private Unix socket and relays the answer; everything else it answers itself.
"""

from __future__ import annotations

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from tether.platform import errors
from tether.platform.errors import ApiError

#: headers that describe one connection, not the call: not relayed in either direction
_HOP = frozenset(h.lower() for h in (
    "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Host", "Upgrade",
    "Proxy-Connection", "TE", "Trailer", "Date", "Server",
))
CONNECT_TIMEOUT = 10.0


class MainProcess:
    """The main process of this sidecar, reached over the Unix socket at ``path``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._session: aiohttp.ClientSession | None = None

    async def forward(self, request: web.Request) -> web.StreamResponse:
        """Send ``request`` to the main process as it came; its answer, as it came."""
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.UnixConnector(path=self.path), auto_decompress=False,
                # no total: a call takes as long as it takes in the main process too
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=CONNECT_TIMEOUT),
            )
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in _HOP)
        body = await request.read()
        try:
            async with self._session.request(
                request.method, "http://main" + request.path_qs, headers=headers,
                data=body or None, allow_redirects=False,
            ) as answer:
                content = await answer.read()
                out = CIMultiDict(
                    (k, v) for k, v in answer.headers.items() if k.lower() not in _HOP)
                return web.Response(status=answer.status, body=content, headers=out)
        except (aiohttp.ClientError, OSError) as exc:
            raise ApiError(
                503, errors.MAIN_PROCESS_UNREACHABLE,
                f"the sidecar's main process did not answer this call: {exc!r}",
            ) from exc

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()
