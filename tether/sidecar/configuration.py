"""Dapr's configuration API over HTTP: get, subscribe (changes pushed to the app), unsubscribe.

Routes under ``/v1.0`` and ``/v1.0-alpha1``, answered as Dapr's ``pkg/api/http/http.go``:

- ``GET .../configuration/{store}?key=a&key=b``: 200 ``{key: {value, version, metadata}}``,
  204 when nothing matched; no ``key`` means every key.
- ``GET .../configuration/{store}/subscribe?key=...``: 200 ``{"id": ...}``; each change is
  then POSTed to the app at ``/configuration/{store}/{key}`` with
  ``{"id": <subscription id>, "items": {key: item}}`` (one POST per changed key, as Dapr).
- ``GET .../configuration/{store}/{id}/unsubscribe``: 200 ``{"ok": true}``; an unknown id is
  500 ``{"ok": false, "message": ...}`` (Dapr's shape for this call, not an errorCode).

``metadata.<name>`` query parameters reach the store (``metadata.pgNotifyChannel``). The
stores and subscriptions are those of
:class:`~tether.platform.configuration.service.ConfigurationService`; this module reads the
requests, renders the answers and pushes the changes to the app.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from functools import partial
from urllib.parse import quote

import aiohttp
from aiohttp import web

from tether.platform import env, errors
from tether.platform.blocks import BlockContext
from tether.platform.configuration.service import (
    ConfigurationService,
    UnknownSubscriptionError,
)
from tether.platform.configuration.store import Items
from tether.platform.errors import ApiError
from tether.sidecar.api_block import ServiceRoutes
from tether.sidecar.request import request_metadata
from tether.workers.app_channel import API_TOKEN_HEADER, DEFAULT_HOST

log = logging.getLogger(__name__)

PREFIXES = ("/v1.0", "/v1.0-alpha1")
PUSH_TIMEOUT = 60.0


class AppPush:
    """POSTs configuration changes to the app, one POST per changed key (as Dapr)."""

    def __init__(
        self, app_port: int, *, app_host: str = DEFAULT_HOST, api_token: str | None = None
    ) -> None:
        self.app_port = app_port
        self.app_host = app_host
        self.api_token = api_token
        self._session: aiohttp.ClientSession | None = None

    async def push(self, store: str, sub_id: str, items: Items) -> None:
        """POST the change of subscription ``sub_id`` on ``store``; a failure is logged (as
        Dapr does without a resiliency policy) and the subscription goes on."""
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

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class ConfigurationApi(ServiceRoutes[ConfigurationService]):
    """The configuration block's HTTP routes over its :class:`ConfigurationService`, and
    the pushes of its subscriptions to the app (none without an app port)."""

    def __init__(
        self,
        service: ConfigurationService,
        app_port: int | None,
        *,
        app_host: str = DEFAULT_HOST,
        api_token: str | None = None,
    ) -> None:
        super().__init__(service)
        self.app_push = (
            None if app_port is None
            else AppPush(app_port, app_host=app_host, api_token=api_token)
        )

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

    def main_process_routes(self) -> Sequence[web.RouteDef]:
        """What only the main process of a sidecar answers (``tether run --api-processes``):
        a subscription lives where it was made, pushing through that process's app channel,
        and its unsubscribe must find it there."""
        return [r for r in self.routes() if r.path.endswith(("/subscribe", "/unsubscribe"))]

    async def close(self) -> None:
        await super().close()  # ends the subscriptions: nothing pushes after this
        if self.app_push is not None:
            await self.app_push.close()

    async def get(self, request: web.Request) -> web.StreamResponse:
        items = await self.service.get(
            request.match_info["store"], request.query.getall("key", []),
            request_metadata(request),
        )
        if not items:
            return web.Response(status=204)
        return web.json_response({key: item.to_json() for key, item in items.items()})

    async def subscribe(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["store"]
        self.service.store(name)  # Dapr checks the store before the app channel
        if self.app_push is None:
            raise ApiError(
                500, errors.APP_CHANNEL_NIL,
                "app channel is not initialized. cannot subscribe to configuration updates",
            )
        sub_id = await self.service.subscribe(
            name, request.query.getall("key", []), request_metadata(request),
            partial(self.app_push.push, name),
        )
        return web.json_response({"id": sub_id})

    async def unsubscribe(self, request: web.Request) -> web.StreamResponse:
        try:
            await self.service.unsubscribe(request.match_info["store"], request.match_info["id"])
        except UnknownSubscriptionError as exc:
            return web.json_response({"ok": False, "message": str(exc)}, status=500)
        return web.json_response({"ok": True})


def configuration_block(context: BlockContext) -> ConfigurationApi:
    """The configuration API; present even without stores, so calls get Dapr's
    ERR_CONFIGURATION_STORE_NOT_CONFIGURED instead of a bare 404."""
    return ConfigurationApi(
        ConfigurationService.from_context(context), context.app_port,
        api_token=env.app_api_token(),
    )
