"""Health, metadata and shutdown on :class:`tether.Client` (docs/client.md)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tether.sdk.client_core import AsyncCore, Call, Reply, SyncCore, segment
from tether.sdk.client_errors import SidecarUnavailableError, TetherApiError

HEALTHZ = Call("GET", "/v1.0/healthz")
# what Dapr's SDKs poll at startup: it answers once the sidecar's components are ready
OUTBOUND = Call("GET", "/v1.0/healthz/outbound")
METADATA = Call("GET", "/v1.0/metadata")
SHUTDOWN = Call("POST", "/v1.0/shutdown")
POLL_INTERVAL = 0.1
MAX_POLL_INTERVAL = 1.0
PROBE_TIMEOUT = 5.0  # one probe; the overall wait is the caller's timeout


def set_metadata_call(key: str, value: str) -> Call:
    return Call("PUT", f"/v1.0/metadata/{segment(key)}", {}, {"Content-Type": "text/plain"},
                value.encode())


def metadata_of(reply: Reply) -> dict[str, Any]:
    body = reply.json()
    if not isinstance(body, dict):
        raise TetherApiError(reply.status, None, "the metadata answer is not a JSON object")
    return body


def _timeout_error(address: str, timeout: float, last: BaseException | None) -> TimeoutError:
    detail = f" (last: {last})" if last is not None else ""
    return TimeoutError(f"the sidecar at {address} was not ready within {timeout:g}s{detail}")


class MetaMixin(SyncCore):
    """Health, metadata and shutdown for :class:`tether.Client`."""

    def healthz(self, *, outbound: bool = False) -> bool:
        """True if the sidecar answers its health probe with 2xx; False if it answers
        otherwise or cannot be reached. ``outbound`` probes ``/v1.0/healthz/outbound``."""
        try:
            reply = self._send(OUTBOUND if outbound else HEALTHZ, PROBE_TIMEOUT)
        except SidecarUnavailableError:
            return False
        return reply.ok

    def wait_for_sidecar(self, timeout: float | None = None) -> None:
        """Poll ``/v1.0/healthz/outbound`` until it answers 2xx, as Dapr's SDK does at
        startup; raise TimeoutError after ``timeout`` seconds (``DAPR_HEALTH_TIMEOUT``,
        60 s by default)."""
        limit = self.settings.health_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        interval, last = POLL_INTERVAL, None
        while True:
            try:
                if self._send(OUTBOUND, min(PROBE_TIMEOUT, max(limit, 0.1))).ok:
                    return
            except SidecarUnavailableError as exc:
                last = exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timeout_error(self.address, limit, last)
            time.sleep(min(interval, remaining))
            interval = min(interval * 2, MAX_POLL_INTERVAL)

    def metadata(self) -> dict[str, Any]:
        """``GET /v1.0/metadata``: app id, runtime version, components, subscriptions,
        extended metadata, as Dapr lists them."""
        return metadata_of(self._request(METADATA))

    def set_metadata(self, key: str, value: str) -> None:
        """``PUT /v1.0/metadata/{key}``: shows as ``extended[key]`` in ``metadata()``."""
        self._request(set_metadata_call(key, value))

    def shutdown(self) -> None:
        """``POST /v1.0/shutdown``: ask the sidecar (and under ``tether run`` its app) to
        stop gracefully."""
        self._request(SHUTDOWN)


class AsyncMetaMixin(AsyncCore):
    """Health, metadata and shutdown for :class:`tether.AsyncClient`."""

    async def healthz(self, *, outbound: bool = False) -> bool:
        """As :meth:`tether.Client.healthz`."""
        try:
            reply = await self._send(OUTBOUND if outbound else HEALTHZ, PROBE_TIMEOUT)
        except SidecarUnavailableError:
            return False
        return reply.ok

    async def wait_for_sidecar(self, timeout: float | None = None) -> None:
        """As :meth:`tether.Client.wait_for_sidecar`."""
        limit = self.settings.health_timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        interval, last = POLL_INTERVAL, None
        while True:
            try:
                if (await self._send(OUTBOUND, min(PROBE_TIMEOUT, max(limit, 0.1)))).ok:
                    return
            except SidecarUnavailableError as exc:
                last = exc
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _timeout_error(self.address, limit, last)
            await asyncio.sleep(min(interval, remaining))
            interval = min(interval * 2, MAX_POLL_INTERVAL)

    async def metadata(self) -> dict[str, Any]:
        """As :meth:`tether.Client.metadata`."""
        return metadata_of(await self._request(METADATA))

    async def set_metadata(self, key: str, value: str) -> None:
        """As :meth:`tether.Client.set_metadata`."""
        await self._request(set_metadata_call(key, value))

    async def shutdown(self) -> None:
        """As :meth:`tether.Client.shutdown`."""
        await self._request(SHUTDOWN)
