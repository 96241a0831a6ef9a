"""``POST /v1.0-alpha1/lock/{store}`` and ``/unlock/{store}`` as Dapr answers them.

Dapr reads the body with protojson (unknown fields ignored, an empty body is all defaults);
then :class:`~tether.platform.lock.service.LockService` checks the request in Dapr's order.
Lock answers ``{"success": bool}``; unlock answers ``{"status": n}`` with the number of
:class:`~tether.platform.lock.store.UnlockStatus`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tether.platform import errors
from tether.platform.blocks import BlockContext
from tether.platform.errors import ApiError
from tether.platform.json_body import JsonBodyError, read_json
from tether.platform.lock.service import LockService
from tether.sidecar.api_block import ServiceRoutes

PREFIX = "/v1.0-alpha1"
_INT32_MAX = 2**31 - 1
_DECIMAL = re.compile(r"-?[0-9]+")


@dataclass(frozen=True, slots=True)
class LockRequest:
    resource_id: str
    lock_owner: str
    expiry_in_seconds: int


def _malformed(problem: str) -> ApiError:
    return ApiError(400, errors.MALFORMED_REQUEST, f"failed deserializing HTTP body: {problem}")


def _text(body: Mapping[str, Any], name: str) -> str:
    value = body.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _malformed(f"{name} must be a string, not {json.dumps(value)}")
    return value


def _int32(body: Mapping[str, Any], name: str) -> int:
    value = body.get(name)
    if value is None:
        return 0
    # protojson takes an int32 as a JSON number without a fraction or as a decimal string
    # (ASCII digits: int() and str.isdigit() take other scripts' digits and "²")
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(f"{name} must be an integer, not {json.dumps(value)}")
    if not -_INT32_MAX - 1 <= value <= _INT32_MAX:
        raise _malformed(f"{name} {value} is out of the int32 range")
    return value


async def read_lock_request(request: web.Request) -> LockRequest:
    try:
        body = read_json(await request.read(), dict, empty={})
    except JsonBodyError as exc:
        raise _malformed(str(exc)) from None
    return LockRequest(
        resource_id=_text(body, "resourceId"),
        lock_owner=_text(body, "lockOwner"),
        expiry_in_seconds=_int32(body, "expiryInSeconds"),
    )


class LockApi(ServiceRoutes[LockService]):
    """The lock block's HTTP routes over its :class:`LockService`."""

    def routes(self) -> Sequence[web.RouteDef]:
        return [
            web.post(PREFIX + "/lock/{store}", self.lock),
            web.post(PREFIX + "/unlock/{store}", self.unlock),
        ]

    async def lock(self, request: web.Request) -> web.StreamResponse:
        req = await read_lock_request(request)
        taken = await self.service.try_lock(
            request.match_info["store"], req.resource_id, req.lock_owner, req.expiry_in_seconds
        )
        return web.json_response({"success": taken})

    async def unlock(self, request: web.Request) -> web.StreamResponse:
        req = await read_lock_request(request)
        status = await self.service.unlock(
            request.match_info["store"], req.resource_id, req.lock_owner
        )
        return web.json_response({"status": int(status)})


def lock_block(context: BlockContext) -> LockApi:
    """The lock API; present even without lock stores, so calls get Dapr's
    ERR_LOCK_STORE_NOT_CONFIGURED instead of a bare 404."""
    return LockApi(LockService.from_context(context))
