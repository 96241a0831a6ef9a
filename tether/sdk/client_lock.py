"""The distributed lock on :class:`tether.Client`: ``try_lock``, ``unlock`` and the ``lock``
context manager over the sidecar's ``/v1.0-alpha1/lock`` API (docs/client.md,
docs/lock.md). ``try_lock`` and ``unlock`` are named as in Dapr's Python SDK."""

from __future__ import annotations

import json

from tether.platform.lock.store import UnlockStatus
from tether.sdk.client_core import ClientBase, context_operation, operation
from tether.sdk.client_errors import TetherApiError, TetherClientError
from tether.sdk.client_http import Call, Reply, segment
from tether.sdk.client_plan import BLOCK, Plan

__all__ = ["LockLostError", "LockNotAcquiredError", "UnlockStatus"]

PREFIX = "/v1.0-alpha1"


class LockNotAcquiredError(TetherClientError):
    """``lock(...)`` found the lock held by another owner."""

    def __init__(self, store: str, resource_id: str) -> None:
        super().__init__(f"lock {resource_id!r} in lock store {store!r} is held by another owner")
        self.store = store
        self.resource_id = resource_id


class LockLostError(TetherClientError):
    """The ``with client.lock(...)`` block ended but the lock was no longer this owner's:
    it expired while the block ran (and another owner may have taken it)."""

    def __init__(self, store: str, resource_id: str, status: UnlockStatus) -> None:
        super().__init__(
            f"lock {resource_id!r} in lock store {store!r} was lost before the block ended "
            f"({status.name}): it expired while held; give a longer expiry"
        )
        self.store = store
        self.resource_id = resource_id
        self.status = status


def _body(resource_id: str, lock_owner: str, expiry: int | None = None) -> bytes:
    body: dict[str, object] = {"resourceId": resource_id, "lockOwner": lock_owner}
    if expiry is not None:
        body["expiryInSeconds"] = expiry
    return json.dumps(body).encode()


def lock_call(store: str, resource_id: str, lock_owner: str, expiry_in_seconds: int) -> Call:
    return Call("POST", f"{PREFIX}/lock/{segment(store)}", {},
                {"Content-Type": "application/json"},
                _body(resource_id, lock_owner, expiry_in_seconds))


def unlock_call(store: str, resource_id: str, lock_owner: str) -> Call:
    return Call("POST", f"{PREFIX}/unlock/{segment(store)}", {},
                {"Content-Type": "application/json"}, _body(resource_id, lock_owner))


def locked_of(reply: Reply) -> bool:
    body = reply.json()
    success = body.get("success") if isinstance(body, dict) else None
    if not isinstance(success, bool):
        raise TetherApiError(reply.status, None, f"unexpected lock answer {reply.body!r}")
    return success


def status_of(reply: Reply) -> UnlockStatus:
    body = reply.json()
    # protojson leaves a zero value out: {} is status 0
    status = body.get("status", 0) if isinstance(body, dict) else None
    try:
        if isinstance(status, bool) or not isinstance(status, int):
            raise ValueError(status)
        return UnlockStatus(status)
    except ValueError:
        raise TetherApiError(reply.status, None,
                             f"unexpected unlock answer {reply.body!r}") from None


class LockMixin(ClientBase):
    """``try_lock``, ``unlock`` and ``lock`` for both clients."""

    @operation
    def try_lock(
        self, store: str, resource_id: str, lock_owner: str, expiry_in_seconds: int
    ) -> Plan[bool]:
        """``POST /v1.0-alpha1/lock/{store}``: True if ``lock_owner`` now holds the lock
        for ``expiry_in_seconds``; False if it is held (by anyone, the same owner included:
        locks are not reentrant). Does not wait."""
        return locked_of((yield lock_call(store, resource_id, lock_owner, expiry_in_seconds)))

    @operation
    def unlock(self, store: str, resource_id: str, lock_owner: str) -> Plan[UnlockStatus]:
        """``POST /v1.0-alpha1/unlock/{store}``: ``UnlockStatus.SUCCESS``,
        ``LOCK_DOES_NOT_EXIST`` (expired or never taken) or ``LOCK_BELONGS_TO_OTHERS``."""
        return status_of((yield unlock_call(store, resource_id, lock_owner)))

    @context_operation
    def lock(
        self, store: str, resource_id: str, lock_owner: str, expiry_in_seconds: int
    ) -> Plan[None]:
        """``with client.lock(...):`` (``async with`` on the async client) runs the block
        holding the lock and releases it after. Raises :class:`LockNotAcquiredError` if the
        lock is held, and :class:`LockLostError` after a block that outlived the lock's
        expiry."""
        if not locked_of((yield lock_call(store, resource_id, lock_owner, expiry_in_seconds))):
            raise LockNotAcquiredError(store, resource_id)
        failed = yield BLOCK
        status = status_of((yield unlock_call(store, resource_id, lock_owner)))
        # only a block that ended normally reports the loss (not over its own exception)
        if not failed and status is not UnlockStatus.SUCCESS:
            raise LockLostError(store, resource_id, status)
