"""The secrets block's operations for any front end: get one secret, or every secret of a
store, as the app's secret scopes allow (docs/secrets.md).

Errors as Dapr's: no secret store 500 ERR_SECRET_STORES_NOT_CONFIGURED, unknown store 401
ERR_SECRET_STORE_NOT_FOUND, denied by scope 403 ERR_PERMISSION_DENIED, a failing store 500
ERR_SECRET_GET. An unknown secret name is 404 ERR_SECRET_GET (Dapr: 500), as the issue
asks: "not there" and "broken" are different answers. A bulk read leaves out the secrets
the scopes deny rather than failing, as Dapr does.
"""

from __future__ import annotations

from collections.abc import Mapping

from tether.platform import errors
from tether.platform.blocks import BlockContext
from tether.platform.errors import ApiError
from tether.platform.secrets.registry import SecretStores
from tether.platform.secrets.scoping import SecretScopes
from tether.platform.secrets.stores import (
    Secret,
    SecretNotFoundError,
    SecretStore,
    SecretStoreError,
)


class SecretsService:
    """The app's secret stores and its secret scopes."""

    def __init__(self, stores: Mapping[str, SecretStore], scopes: SecretScopes) -> None:
        self.stores = stores
        self.scopes = scopes

    @classmethod
    def from_context(cls, context: BlockContext) -> SecretsService:
        """The service over the app's ``secretstores.*`` components and the scopes of its
        configuration (no store is fine: calls then get Dapr's
        ERR_SECRET_STORES_NOT_CONFIGURED); BlockConfigError names what is wrong."""
        return cls(SecretStores.from_components(context.components),
                   SecretScopes.from_spec(context.configuration))

    async def start(self) -> None:
        """Nothing to open: the stores were built (and their files read) at startup."""

    async def close(self) -> None:
        """Nothing to release."""

    async def get(self, store: str, name: str, metadata: Mapping[str, str]) -> Secret:
        """The secret ``name`` of ``store`` (``metadata`` goes to the store)."""
        found = self._store(store)
        if not self.scopes.allows(store, name):
            raise ApiError(
                403,
                errors.PERMISSION_DENIED,
                f"access denied by policy to get {name!r} from {store!r}",
            )
        try:
            return await found.get(name, metadata)
        except SecretNotFoundError as exc:
            raise ApiError(404, errors.SECRET_GET, _get_failed(name, store, exc)) from None
        except SecretStoreError as exc:
            raise ApiError(500, errors.SECRET_GET, _get_failed(name, store, exc)) from None

    async def bulk(self, store: str, metadata: Mapping[str, str]) -> dict[str, Secret]:
        """Every secret of ``store`` the scopes allow, by name."""
        found = self._store(store)
        try:
            secrets = await found.bulk(metadata)
        except SecretStoreError as exc:
            raise ApiError(
                500,
                errors.SECRET_GET,
                f"failed getting secrets from secret store {store}: {exc}",
            ) from None
        return {k: v for k, v in secrets.items() if self.scopes.allows(store, k)}

    def _store(self, name: str) -> SecretStore:
        if not self.stores:
            raise ApiError(
                500, errors.SECRET_STORES_NOT_CONFIGURED, "secret store is not configured"
            )
        store = self.stores.get(name)
        if store is None:
            raise ApiError(
                401, errors.SECRET_STORE_NOT_FOUND, f"failed finding secret store with key {name}"
            )
        return store


def _get_failed(name: str, store: str, exc: Exception) -> str:
    return f"failed getting secret with key {name} from secret store {store}: {exc}"
