"""The configuration block's operations for any front end: get, subscribe and unsubscribe
over the app's configuration stores (docs/configuration.md).

A subscription hands each change to the :data:`Deliver` callable its front end gave when
subscribing: the sidecar POSTs it to the app, a gRPC stream would send it. When the store
connection drops, the subscription watches again (with backoff) and delivers the current
values of its keys, so a change made meanwhile still arrives (as its latest value).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from tether.platform import errors
from tether.platform.aio import cancel_task
from tether.platform.blocks import BlockContext
from tether.platform.configuration.registry import configuration_stores
from tether.platform.configuration.store import (
    ConfigurationStore,
    ConfigurationStoreError,
    ConfigurationWatch,
    Items,
)
from tether.platform.errors import ApiError, TetherError

log = logging.getLogger(__name__)

#: the pause before watching again after a lost store connection, doubled up to the max
RECONNECT_MIN = 0.1
RECONNECT_MAX = 5.0

#: delivers the changed items of the subscription whose id is the first argument; what it
#: raises ends that subscription's deliveries, so it reports its own failures
Deliver = Callable[[str, Items], Awaitable[None]]


class UnknownSubscriptionError(TetherError):
    """No such subscription on that store; Dapr answers ``{ok: false, message}``."""

    def __init__(self, sub_id: str) -> None:
        super().__init__(
            f"failed to unsubscribe to configuration request {sub_id}: "
            f"subscription with id {sub_id} does not exist"
        )


@dataclass(slots=True)
class Subscription:
    store: str
    keys: list[str]
    metadata: dict[str, str]
    deliver: Deliver
    #: the current watch (replaced when the pump reconnects)
    watch: ConfigurationWatch
    task: asyncio.Task[None] | None = None


class ConfigurationService:
    """The app's configuration stores and the subscriptions delivering their changes."""

    def __init__(self, stores: Mapping[str, ConfigurationStore]) -> None:
        self.stores = dict(stores)
        self._subscriptions: dict[str, Subscription] = {}

    @classmethod
    def from_context(cls, context: BlockContext) -> ConfigurationService:
        """The service over the app's ``configuration.*`` components (none is fine: calls
        then get Dapr's ERR_CONFIGURATION_STORE_NOT_CONFIGURED); BlockConfigError names a
        bad component."""
        return cls(configuration_stores(context.components))

    async def start(self) -> None:
        """Start every store; ConfigurationStoreError naming the one that cannot start."""
        for name, store in self.stores.items():
            try:
                await store.start()
            except ConfigurationStoreError as exc:
                raise ConfigurationStoreError(f"configuration store {name!r}: {exc}") from exc

    async def close(self) -> None:
        """End every subscription, then close the stores."""
        for sub_id in list(self._subscriptions):
            await self._stop(sub_id)
        for name, store in self.stores.items():
            try:
                await store.close()
            except Exception:  # one store failing to close must not keep others open
                log.exception("closing configuration store %r failed", name)

    def store(self, name: str) -> ConfigurationStore:
        """The store ``name``; the ApiError every operation answers when there is none."""
        if not self.stores:
            raise ApiError(
                500, errors.CONFIGURATION_STORE_NOT_CONFIGURED,
                "configuration stores not configured",
            )
        store = self.stores.get(name)
        if store is None:
            raise ApiError(
                400, errors.CONFIGURATION_STORE_NOT_FOUND, f"configuration store {name} not found"
            )
        return store

    async def get(self, store: str, keys: Sequence[str], metadata: Mapping[str, str]) -> Items:
        """The items of ``keys`` that exist (every item when ``keys`` is empty)."""
        found = self.store(store)
        try:
            return await found.get(keys, metadata)
        except ConfigurationStoreError as exc:
            raise ApiError(
                500, errors.CONFIGURATION_GET,
                f"failed to get {keys} from Configuration store {store}: {exc}",
            ) from exc

    async def subscribe(
        self, store: str, keys: Sequence[str], metadata: Mapping[str, str], deliver: Deliver
    ) -> str:
        """Watch ``keys`` (every key when empty) and hand each change to ``deliver`` until
        unsubscribed; the subscription's id. The watch listens once this returns."""
        found = self.store(store)
        try:
            watch = await found.watch(keys, metadata)
        except ConfigurationStoreError as exc:
            raise ApiError(
                500, errors.CONFIGURATION_SUBSCRIBE,
                f"failed to subscribe {keys} from Configuration store {store}: {exc}",
            ) from exc
        sub_id = str(uuid.uuid4())
        sub = Subscription(store, list(keys), dict(metadata), deliver, watch)
        sub.task = asyncio.create_task(self._pump(sub_id, sub), name=f"configuration {sub_id}")
        self._subscriptions[sub_id] = sub
        return sub_id

    async def unsubscribe(self, store: str, sub_id: str) -> None:
        """End the subscription ``sub_id`` of ``store``; UnknownSubscriptionError if there
        is none (a delivery in flight is cancelled)."""
        self.store(store)
        found = self._subscriptions.get(sub_id)
        if found is None or found.store != store:
            raise UnknownSubscriptionError(sub_id)
        await self._stop(sub_id)

    async def _stop(self, sub_id: str) -> None:
        """Stop delivering (an in-flight delivery is cancelled) and release the watch."""
        sub = self._subscriptions.pop(sub_id)
        await cancel_task(sub.task)
        await sub.watch.close()  # closing twice is harmless; the pump may not have run

    async def _pump(self, sub_id: str, sub: Subscription) -> None:
        """Deliver each change; when the store connection drops, watch again (with
        backoff) and deliver the current values of the keys."""
        store = self.stores[sub.store]
        delay = RECONNECT_MIN
        while True:
            try:
                async for items in sub.watch:
                    delay = RECONNECT_MIN
                    await sub.deliver(sub_id, items)
                return
            except ConfigurationStoreError as exc:
                log.warning("configuration subscription %s on %r lost its store connection, "
                            "reconnecting: %s", sub_id, sub.store, exc)
            await sub.watch.close()
            while True:
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX)
                try:
                    sub.watch = await store.watch(sub.keys, sub.metadata)
                    break
                except ConfigurationStoreError as exc:
                    log.warning("configuration subscription %s on %r: still cannot watch: %s",
                                sub_id, sub.store, exc)
            try:
                current = await store.get(sub.keys, sub.metadata)
            except ConfigurationStoreError as exc:
                log.warning("configuration subscription %s on %r: cannot read the current "
                            "values after reconnecting: %s", sub_id, sub.store, exc)
                current = {}
            if current:
                await sub.deliver(sub_id, current)
