"""Health, metadata and shutdown on :class:`tether.Client` (docs/client.md)."""

from __future__ import annotations

from typing import Any

from tether.sdk.client_core import ClientBase, operation
from tether.sdk.client_errors import SidecarUnavailableError, TetherApiError
from tether.sdk.client_http import Call, Reply, segment
from tether.sdk.client_plan import Backoff, Plan, Send

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


class MetaMixin(ClientBase):
    """Health, metadata and shutdown for both clients."""

    @operation
    def healthz(self, *, outbound: bool = False) -> Plan[bool]:
        """True if the sidecar answers its health probe with 2xx; False if it answers
        otherwise or cannot be reached. ``outbound`` probes ``/v1.0/healthz/outbound``."""
        try:
            reply: Reply = yield Send(OUTBOUND if outbound else HEALTHZ, PROBE_TIMEOUT)
        except SidecarUnavailableError:
            return False
        return reply.ok

    @operation
    def wait_for_sidecar(self, timeout: float | None = None) -> Plan[None]:
        """Poll ``/v1.0/healthz/outbound`` until it answers 2xx, as Dapr's SDK does at
        startup; raise TimeoutError after ``timeout`` seconds (``DAPR_HEALTH_TIMEOUT``,
        60 s by default)."""
        limit = self.settings.health_timeout if timeout is None else timeout
        backoff = Backoff(limit, POLL_INTERVAL, 2, MAX_POLL_INTERVAL)
        last = None
        while True:
            try:
                if (yield Send(OUTBOUND, min(PROBE_TIMEOUT, max(limit, 0.1)))).ok:
                    return
            except SidecarUnavailableError as exc:
                last = exc
            pause = backoff.pause()
            if pause is None:
                raise _timeout_error(self.address, limit, last)
            yield pause

    @operation
    def metadata(self) -> Plan[dict[str, Any]]:
        """``GET /v1.0/metadata``: app id, runtime version, components, subscriptions,
        extended metadata, as Dapr lists them."""
        return metadata_of((yield METADATA))

    @operation
    def set_metadata(self, key: str, value: str) -> Plan[None]:
        """``PUT /v1.0/metadata/{key}``: shows as ``extended[key]`` in ``metadata()``."""
        yield set_metadata_call(key, value)

    @operation
    def shutdown(self) -> Plan[None]:
        """``POST /v1.0/shutdown``: ask the sidecar (and under ``tether run`` its app) to
        stop gracefully."""
        yield SHUTDOWN
