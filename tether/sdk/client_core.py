"""The one request path every :class:`tether.Client` method goes through.

A building block is a mixin (``client_pubsub.py``, ``client_meta.py``, ...) whose methods
describe a request as a :class:`Call`, send it with ``_request`` and read the
:class:`Reply`. Building the call and reading the reply are plain functions shared by the
sync and the async client; only ``_request`` differs: :class:`SyncCore` on ``http.client``
with one kept-alive connection, :class:`AsyncCore` on an aiohttp session.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote, urlencode

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from tether.sdk.client_errors import SidecarUnavailableError, TetherApiError
from tether.sdk.client_settings import ClientSettings, resolve_settings


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP request to the sidecar; ``path`` is already quoted."""

    method: str
    path: str
    params: Mapping[str, str] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def target(self, base_path: str) -> str:
        query = urlencode(self.params, quote_via=quote) if self.params else ""
        return base_path + self.path + ("?" + query if query else "")


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    reason: str
    body: bytes
    #: the response headers, looked up case-insensitively (``ETag``, ``metadata.*``)
    headers: Mapping[str, str] = field(default_factory=CIMultiDict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def error(self) -> TetherApiError:
        return TetherApiError.from_response(self.status, self.reason, self.body)


def segment(value: str) -> str:
    """One path segment (a component or key name), quoted so that it stays one segment."""
    return quote(value, safe="")


class _Base:
    def __init__(
        self,
        address: str | None = None,
        *,
        api_token: str | None = None,
        timeout: float | None = None,
    ) -> None:
        self.settings: ClientSettings = resolve_settings(
            address, api_token=api_token, timeout=timeout
        )

    @property
    def address(self) -> str:
        return self.settings.base_url

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.address!r})"


# errors of a kept-alive connection the server closed while idle: the request never got an
# answer, so it is sent once more on a fresh connection (at-least-once tolerates the rare
# duplicate if the server did act on it)
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class SyncCore(_Base):
    """The blocking transport: one HTTP/1.1 connection, reused, one request at a time
    (a lock makes a client safe to share between threads)."""

    def __init__(
        self,
        address: str | None = None,
        *,
        api_token: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(address, api_token=api_token, timeout=timeout)
        self._connection: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connect(self) -> http.client.HTTPConnection:
        s = self.settings
        if s.scheme == "https":
            return http.client.HTTPSConnection(
                s.host, s.port, timeout=s.timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(s.host, s.port, timeout=s.timeout)

    def _request(self, call: Call, *, timeout: float | None = None) -> Reply:
        """Send ``call``; a non-2xx answer raises :class:`TetherApiError`."""
        reply = self._send(call, timeout)
        if not reply.ok:
            raise reply.error()
        return reply

    def _send(self, call: Call, timeout: float | None = None) -> Reply:
        headers = {**self.settings.headers(), **call.headers}
        target = call.target(self.settings.base_path)
        with self._lock:
            for attempt in (1, 2):
                reused = self._connection is not None
                connection = self._connection or self._connect()
                self._connection = connection
                connection.timeout = timeout or self.settings.timeout
                if connection.sock is not None:
                    connection.sock.settimeout(connection.timeout)
                try:
                    connection.request(call.method, target, body=call.body, headers=headers)
                    response = connection.getresponse()
                    body = response.read()
                except _STALE as exc:
                    self._drop()
                    if reused and attempt == 1:
                        continue
                    raise self._unavailable(exc) from exc
                except (OSError, http.client.HTTPException) as exc:
                    self._drop()
                    raise self._unavailable(exc) from exc
                if response.will_close:
                    self._drop()
                return Reply(response.status, response.reason, body,
                             CIMultiDict(response.getheaders()))
        raise AssertionError("unreachable")  # pragma: no cover

    def _unavailable(self, exc: BaseException) -> SidecarUnavailableError:
        return SidecarUnavailableError(f"cannot reach the sidecar at {self.address}: {exc}")

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close the kept-alive connection (the next call opens a new one)."""
        with self._lock:
            self._drop()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncCore(_Base):
    """The asyncio transport: an aiohttp session (its pool keeps connections alive),
    created on first use inside the running loop."""

    def __init__(
        self,
        address: str | None = None,
        *,
        api_token: str | None = None,
        timeout: float | None = None,
    ) -> None:
        super().__init__(address, api_token=api_token, timeout=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self.settings.headers(),
                timeout=aiohttp.ClientTimeout(total=self.settings.timeout),
                # no Content-Type unless a call sets one (aiohttp would add octet-stream)
                skip_auto_headers=("Content-Type",),
            )
        return self._session

    async def _request(self, call: Call, *, timeout: float | None = None) -> Reply:
        """Send ``call``; a non-2xx answer raises :class:`TetherApiError`."""
        reply = await self._send(call, timeout)
        if not reply.ok:
            raise reply.error()
        return reply

    async def _send(self, call: Call, timeout: float | None = None) -> Reply:
        session = self._open()
        s = self.settings
        url = URL(s.origin + call.target(s.base_path), encoded=True)
        extra: dict[str, Any] = {}
        if timeout:
            extra["timeout"] = aiohttp.ClientTimeout(total=timeout)
        try:
            async with session.request(
                call.method, url, data=call.body, headers=dict(call.headers), **extra
            ) as response:
                body = await response.read()
                return Reply(response.status, response.reason or "", body, response.headers)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise SidecarUnavailableError(
                f"cannot reach the sidecar at {self.address}: {exc!r}"
            ) from exc

    async def close(self) -> None:
        """Close the session and its connections."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
