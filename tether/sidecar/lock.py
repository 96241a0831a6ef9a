"""``POST /v1.0-alpha1/lock/{store}`` and ``/unlock/{store}`` as Dapr answers them.

Dapr reads the body with protojson (unknown fields ignored, an empty body is all defaults)
and checks, in order: expiry (lock only), that any lock store exists, resourceId,
lockOwner, then the store name. Lock answers ``{"success": bool}``; unlock answers
``{"status": n}`` with the number of :class:`UnlockStatus`. A store failure is a 500
(ERR_TRY_LOCK / ERR_UNLOCK), as in Dapr.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tether.platform import errors
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.errors import ApiError
from tether.platform.lock.keys import LockKeyError
from tether.platform.lock.registry import LockConfigError, NamedLockStore, lock_stores
from tether.platform.lock.store import LockStoreError

log = logging.getLogger(__name__)

PREFIX = "/v1.0-alpha1"
_INT32_MAX = 2**31 - 1


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
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)
    elif isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _malformed(f"{name} must be an integer, not {json.dumps(value)}")
    if not -_INT32_MAX - 1 <= value <= _INT32_MAX:
        raise _malformed(f"{name} {value} is out of the int32 range")
    return value


async def read_lock_request(request: web.Request) -> LockRequest:
    raw = await request.read()
    body: Any = {}
    if raw.strip():
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise _malformed(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise _malformed("the body must be a JSON object")
    return LockRequest(
        resource_id=_text(body, "resourceId"),
        lock_owner=_text(body, "lockOwner"),
        expiry_in_seconds=_int32(body, "expiryInSeconds"),
    )


class LockApi:
    """The lock block: its routes, and the stores it opens and closes."""

    def __init__(self, stores: Mapping[str, NamedLockStore]) -> None:
        self.stores = dict(stores)

    def routes(self) -> Sequence[web.RouteDef]:
        return [
            web.post(PREFIX + "/lock/{store}", self.lock),
            web.post(PREFIX + "/unlock/{store}", self.unlock),
        ]

    async def start(self) -> None:
        for named in self.stores.values():
            await named.store.start()

    async def close(self) -> None:
        for named in self.stores.values():
            try:
                await named.store.close()
            except Exception:  # one store failing to close must not keep others open
                log.exception("closing lock store %r failed", named.name)

    def _store(self, name: str, req: LockRequest) -> NamedLockStore:
        if not self.stores:
            raise ApiError(500, errors.LOCK_STORE_NOT_CONFIGURED, "lock store is not configured")
        if not req.resource_id:
            raise ApiError(
                400, errors.MALFORMED_REQUEST, f"ResourceId is empty in lock store {name}"
            )
        if not req.lock_owner:
            raise ApiError(
                400, errors.MALFORMED_REQUEST, f"LockOwner is empty in lock store {name}"
            )
        found = self.stores.get(name)
        if found is None:
            raise ApiError(400, errors.LOCK_STORE_NOT_FOUND, f"lock store {name} not found")
        return found

    async def lock(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["store"]
        req = await read_lock_request(request)
        if req.expiry_in_seconds <= 0:
            raise ApiError(
                400, errors.MALFORMED_REQUEST,
                f"ExpiryInSeconds is not positive in lock store {name}",
            )
        named = self._store(name, req)
        try:
            key = named.prefix.key(req.resource_id)
            taken = await named.store.try_lock(key, req.lock_owner, req.expiry_in_seconds)
        except (LockKeyError, LockStoreError) as exc:
            raise ApiError(500, errors.TRY_LOCK, f"failed to try acquiring lock: {exc}") from exc
        return web.json_response({"success": taken})

    async def unlock(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["store"]
        req = await read_lock_request(request)
        named = self._store(name, req)
        try:
            key = named.prefix.key(req.resource_id)
            status = await named.store.unlock(key, req.lock_owner)
        except (LockKeyError, LockStoreError) as exc:
            raise ApiError(500, errors.UNLOCK, f"failed to release lock: {exc}") from exc
        return web.json_response({"status": int(status)})


def lock_block(context: BlockContext) -> LockApi | None:
    """The lock API; present even without lock stores, so calls get Dapr's
    ERR_LOCK_STORE_NOT_CONFIGURED instead of a bare 404."""
    try:
        return LockApi(lock_stores(context.components, context.app_id))
    except LockConfigError as exc:
        raise BlockConfigError(str(exc)) from exc
