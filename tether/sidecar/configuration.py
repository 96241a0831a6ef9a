"""Dapr's configuration API: get, subscribe (changes pushed to the app), unsubscribe.

Routes under ``/v1.0`` and ``/v1.0-alpha1``, answered as Dapr's ``pkg/api/http/http.go``:

- ``GET .../configuration/{store}?key=a&key=b``: 200 ``{key: {value, version, metadata}}``,
  204 when nothing matched; no ``key`` means every key.
- ``GET .../configuration/{store}/subscribe?key=...``: 200 ``{"id": ...}``; each change is
  then POSTed to the app at ``/configuration/{store}/{key}`` with
  ``{"id": <subscription id>, "items": {key: item}}`` (one POST per changed key, as Dapr).
- ``GET .../configuration/{store}/{id}/unsubscribe``: 200 ``{"ok": true}``; an unknown id is
  500 ``{"ok": false, "message": ...}`` (Dapr's shape for this call, not an errorCode).

``metadata.<name>`` query parameters reach the store (``metadata.pgNotifyChannel``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

import aiohttp
from aiohttp import web

from tether.platform import env, errors
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.configuration.registry import ConfigurationConfigError, configuration_stores
from tether.platform.configuration.store import (
    ConfigurationStore,
    ConfigurationStoreError,
    ConfigurationWatch,
    Items,
)
from tether.platform.errors import ApiError
from tether.sidecar.request import request_metadata
from tether.workers.app_channel import API_TOKEN_HEADER, DEFAULT_HOST

log = logging.getLogger(__name__)

PREFIXES = ("/v1.0", "/v1.0-alpha1")
#: Dapr's variable: the token the sidecar sends to the app
APP_API_TOKEN = env.APP_API_TOKEN
PUSH_TIMEOUT = 60.0
#: the pause before watching again after a lost store connection, doubled up to the max
RECONNECT_MIN = 0.1
RECONNECT_MAX = 5.0


@dataclass(slots=True)
class Subscription:
    store: str
    keys: list[str]
    metadata: dict[str, str]
    #: the current watch (replaced when the pump reconnects)
    watch: ConfigurationWatch
    task: asyncio.Task[None] | None = None



class ConfigurationApi:
    """The configuration block: routes, stores, and the subscriptions pushing to the app."""

    def __init__(
        self,
        stores: Mapping[str, ConfigurationStore],
        app_port: int | None,
        *,
        app_host: str = DEFAULT_HOST,
        api_token: str | None = None,
    ) -> None:
        self.stores = dict(stores)
        self.app_port = app_port
        self.app_host = app_host
        self.api_token = api_token
        self._subscriptions: dict[str, Subscription] = {}
        self._session: aiohttp.ClientSession | None = None

    def routes(self) -> Sequence[web.RouteDef]:
        routes: list[web.RouteDef] = []
        for prefix in PREFIXES:
            base = prefix + "/configuration/{store}"
            routes += [
                web.get(base, self.get),
                web.get(base + "/subscribe", self.subscribe),
                web.get(base + "/{id}/unsubscribe", self.unsubscribe),
            ]
        return routes

    async def start(self) -> None:
        for store in self.stores.values():
            await store.start()

    async def close(self) -> None:
        for sub_id in list(self._subscriptions):
            await self._stop(sub_id)
        if self._session is not None:
            await self._session.close()
            self._session = None
        for name, store in self.stores.items():
            try:
                await store.close()
            except Exception:  # one store failing to close must not keep others open
                log.exception("closing configuration store %r failed", name)

    def _store(self, request: web.Request) -> tuple[str, ConfigurationStore]:
        if not self.stores:
            raise ApiError(
                500, errors.CONFIGURATION_STORE_NOT_CONFIGURED,
                "configuration stores not configured",
            )
        name = request.match_info["store"]
        store = self.stores.get(name)
        if store is None:
            raise ApiError(
                400, errors.CONFIGURATION_STORE_NOT_FOUND, f"configuration store {name} not found"
            )
        return name, store

    async def get(self, request: web.Request) -> web.StreamResponse:
        name, store = self._store(request)
        keys = request.query.getall("key", [])
        try:
            items = await store.get(keys, request_metadata(request))
        except ConfigurationStoreError as exc:
            raise ApiError(
                500, errors.CONFIGURATION_GET,
                f"failed to get {keys} from Configuration store {name}: {exc}",
            ) from exc
        if not items:
            return web.Response(status=204)
        return web.json_response({key: item.to_json() for key, item in items.items()})

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        name, store = self._store(request)
        if self.app_port is None:
            raise ApiError(
                500, errors.APP_CHANNEL_NIL,
                "app channel is not initialized. cannot subscribe to configuration updates",
            )
        keys = request.query.getall("key", [])
        metadata = request_metadata(request)
        try:
            watch = await store.watch(keys, metadata)
        except ConfigurationStoreError as exc:
            raise ApiError(
                500, errors.CONFIGURATION_SUBSCRIBE,
                f"failed to subscribe {keys} from Configuration store {name}: {exc}",
            ) from exc
        sub_id = str(uuid.uuid4())
        sub = Subscription(name, keys, metadata, watch)
        sub.task = asyncio.create_task(self._pump(sub_id, sub), name=f"configuration {sub_id}")
        self._subscriptions[sub_id] = sub
        return web.json_response({"id": sub_id})

    async def unsubscribe(self, request: web.Request) -> web.StreamResponse:
        name, _ = self._store(request)
        sub_id = request.match_info["id"]
        found = self._subscriptions.get(sub_id)
        if found is None or found.store != name:
            message = (
                f"failed to unsubscribe to configuration request {sub_id}: "
                f"subscription with id {sub_id} does not exist"
            )
            return web.json_response({"ok": False, "message": message}, status=500)
        await self._stop(sub_id)
        return web.json_response({"ok": True})

    async def _stop(self, sub_id: str) -> None:
        """Stop pushing (an in-flight push is cancelled) and release the watch."""
        sub = self._subscriptions.pop(sub_id)
        if sub.task is not None:
            sub.task.cancel()
            try:
                await sub.task
            except asyncio.CancelledError:
                pass
        await sub.watch.close()  # closing twice is harmless; the pump may not have run

    async def _pump(self, sub_id: str, sub: Subscription) -> None:
        """Push each change; when the store connection drops, watch again (with backoff)
        and push the current values of the keys, so a change made meanwhile still
        arrives (as its latest value)."""
        store = self.stores[sub.store]
        delay = RECONNECT_MIN
        while True:
            try:
                async for items in sub.watch:
                    delay = RECONNECT_MIN
                    await self._push(sub_id, sub.store, items)
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
                await self._push(sub_id, sub.store, current)

    async def _push(self, sub_id: str, store: str, items: Items) -> None:
        """POST the change to the app once per changed key; a failure is logged (as Dapr
        does without a resiliency policy) and the subscription goes on."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        body = json.dumps({"id": sub_id, "items": {k: v.to_json() for k, v in items.items()}})
        headers = {"Content-Type": "application/json"}
        if self.api_token:
            headers[API_TOKEN_HEADER] = self.api_token
        for key in items:
            url = (
                f"http://{self.app_host}:{self.app_port}/configuration/"
                f"{quote(store, safe='')}/{quote(key, safe='/')}"
            )
            try:
                async with self._session.post(
                    url, data=body, headers=headers,
                    timeout=aiohttp.ClientTimeout(total=PUSH_TIMEOUT),
                ) as response:
                    if response.status != 200:
                        log.error("the app answered %d to the configuration change at %s",
                                  response.status, url)
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.error("sending the configuration change to %s failed: %r", url, exc)


def configuration_block(context: BlockContext) -> ConfigurationApi | None:
    """The configuration API; present even without stores, so calls get Dapr's
    ERR_CONFIGURATION_STORE_NOT_CONFIGURED instead of a bare 404."""
    try:
        stores = configuration_stores(context.components)
    except ConfigurationConfigError as exc:
        raise BlockConfigError(str(exc)) from exc
    return ConfigurationApi(
        stores, context.app_port, api_token=env.app_api_token()
    )
