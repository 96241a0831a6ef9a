"""The secrets building block's HTTP API (Dapr's, docs/secrets.md).

- ``GET /v1.0/secrets/{store}/{name}`` -> ``{key: value}`` (``metadata.*`` query parameters
  go to the store)
- ``GET /v1.0/secrets/{store}/bulk`` -> ``{name: {key: value}}``, only the secrets the
  app's scopes allow

The checks and their statuses are :class:`~tether.platform.secrets.service.SecretsService`'s.
"""

from __future__ import annotations

from collections.abc import Sequence

from aiohttp import web

from tether.platform.blocks import BlockContext
from tether.platform.secrets.service import SecretsService
from tether.sidecar.api_block import ServiceRoutes
from tether.sidecar.request import request_metadata


class SecretsApi(ServiceRoutes[SecretsService]):
    """The secrets block's HTTP routes over its :class:`SecretsService`."""

    def routes(self) -> Sequence[web.RouteDef]:
        # bulk first: a secret named "bulk" is shadowed, as in Dapr
        return [
            web.get("/v1.0/secrets/{store}/bulk", self.bulk),
            web.get("/v1.0/secrets/{store}/{name}", self.get),
        ]

    async def get(self, request: web.Request) -> web.StreamResponse:
        secret = await self.service.get(
            request.match_info["store"], request.match_info["name"], request_metadata(request)
        )
        return web.json_response(secret)

    async def bulk(self, request: web.Request) -> web.StreamResponse:
        secrets = await self.service.bulk(request.match_info["store"], request_metadata(request))
        return web.json_response(secrets)


def secrets_block(context: BlockContext) -> SecretsApi:
    """The block factory (sidecar/blocks.py). Built even without a secret store, so that the
    API answers Dapr's ERR_SECRET_STORES_NOT_CONFIGURED instead of a bare 404."""
    return SecretsApi(SecretsService.from_context(context))
