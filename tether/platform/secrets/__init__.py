"""Dapr's secrets building block (docs/secrets.md).

- :mod:`.stores`: ``secretstores.local.file`` and ``secretstores.local.env``
- :mod:`.registry`: the app's secret store components turned into stores
- :mod:`.resolve`: ``secretKeyRef`` values in other components' metadata, resolved at start
- :mod:`.scoping`: the app configuration's secret scopes
- :mod:`.api`: ``GET /v1.0/secrets/{store}/{name}`` and ``/bulk``, plugged into the sidecar
  through ``tether.platform.sidecar.blocks``
"""

from .registry import SecretStores, build_store
from .resolve import SecretRefError, resolve_app_secrets, resolve_secret_refs
from .scoping import ScopeConfigError, SecretScope, SecretScopes
from .stores import (
    LocalEnvStore,
    LocalFileStore,
    Secret,
    SecretConfigError,
    SecretNotFoundError,
    SecretStore,
    SecretStoreConfigError,
    SecretStoreError,
    SecretText,
)

__all__ = [
    "LocalEnvStore",
    "LocalFileStore",
    "ScopeConfigError",
    "Secret",
    "SecretConfigError",
    "SecretNotFoundError",
    "SecretRefError",
    "SecretScope",
    "SecretScopes",
    "SecretStore",
    "SecretStoreConfigError",
    "SecretStoreError",
    "SecretStores",
    "SecretText",
    "build_store",
    "resolve_app_secrets",
    "resolve_secret_refs",
]
