"""The secrets building block's HTTP API (Dapr's, docs/secrets.md).

- ``GET /v1.0/secrets/{store}/{name}`` -> ``{key: value}`` (``metadata.*`` query parameters
  go to the store)
- ``GET /v1.0/secrets/{store}/bulk`` -> ``{name: {key: value}}``, only the secrets the
  app's scopes allow (Dapr leaves the others out rather than failing the call)

Statuses and codes as Dapr's: no secret store 500 ERR_SECRET_STORES_NOT_CONFIGURED, unknown
store 401 ERR_SECRET_STORE_NOT_FOUND, denied by scope 403 ERR_PERMISSION_DENIED, a failing
store 500 ERR_SECRET_GET. An unknown secret name is 404 ERR_SECRET_GET (Dapr: 500), as the
issue asks: "not there" and "broken" are different answers.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from aiohttp import web

from tether.platform import errors
from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.errors import ApiError
from tether.platform.secrets.registry import SecretStores
from tether.platform.secrets.scoping import SecretScopes
from tether.platform.secrets.stores import (
    SecretConfigError,
    SecretNotFoundError,
    SecretStore,
    SecretStoreError,
)
from tether.sidecar.request import request_metadata


class SecretsApi:
    """The routes over the app's secret stores and its secret scopes."""

    def __init__(self, stores: Mapping[str, SecretStore], scopes: SecretScopes) -> None:
        self.stores = stores
        self.scopes = scopes

    def routes(self) -> Sequence[web.RouteDef]:
        # bulk first: a secret named "bulk" is shadowed, as in Dapr
        return [
            web.get("/v1.0/secrets/{store}/bulk", self.bulk),
            web.get("/v1.0/secrets/{store}/{name}", self.get),
        ]

    async def start(self) -> None:
        """Nothing to open: the stores were built (and their files read) at startup."""

    async def close(self) -> None:
        """Nothing to release."""

    def _store(self, request: web.Request) -> tuple[str, SecretStore]:
        if not self.stores:
            raise ApiError(
                500, errors.SECRET_STORES_NOT_CONFIGURED, "secret store is not configured"
            )
        name = request.match_info["store"]
        store = self.stores.get(name)
        if store is None:
            raise ApiError(
                401, errors.SECRET_STORE_NOT_FOUND, f"failed finding secret store with key {name}"
            )
        return name, store

    async def get(self, request: web.Request) -> web.StreamResponse:
        store_name, store = self._store(request)
        name = request.match_info["name"]
        if not self.scopes.allows(store_name, name):
            raise ApiError(
                403,
                errors.PERMISSION_DENIED,
                f"access denied by policy to get {name!r} from {store_name!r}",
            )
        try:
            secret = await store.get(name, request_metadata(request))
        except SecretNotFoundError as exc:
            raise ApiError(404, errors.SECRET_GET, _get_failed(name, store_name, exc)) from None
        except SecretStoreError as exc:
            raise ApiError(500, errors.SECRET_GET, _get_failed(name, store_name, exc)) from None
        return web.json_response(secret)

    async def bulk(self, request: web.Request) -> web.StreamResponse:
        store_name, store = self._store(request)
        try:
            secrets = await store.bulk(request_metadata(request))
        except SecretStoreError as exc:
            raise ApiError(
                500,
                errors.SECRET_GET,
                f"failed getting secrets from secret store {store_name}: {exc}",
            ) from None
        allowed = {k: v for k, v in secrets.items() if self.scopes.allows(store_name, k)}
        return web.json_response(allowed)


def _get_failed(name: str, store: str, exc: Exception) -> str:
    return f"failed getting secret with key {name} from secret store {store}: {exc}"



def secrets_block(context: BlockContext) -> SecretsApi:
    """The block factory (sidecar/blocks.py). Built even without a secret store, so that the
    API answers Dapr's ERR_SECRET_STORES_NOT_CONFIGURED instead of a bare 404."""
    try:
        stores = SecretStores.from_components(context.components)
        scopes = SecretScopes.from_spec(context.configuration)
    except SecretConfigError as exc:
        raise BlockConfigError(str(exc)) from exc
    return SecretsApi(stores, scopes)
