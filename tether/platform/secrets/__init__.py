"""Dapr's secrets building block (docs/secrets.md).

- :mod:`.stores`: the store contract, ``secretstores.local.file`` and ``.local.env``
- :mod:`.registry`: the app's secret store components turned into stores
- :mod:`.resolve`: ``secretKeyRef`` values in other components' metadata, resolved at start
- :mod:`.scoping`: the app configuration's secret scopes
- :mod:`.service`: get one secret or a store's secrets, as the scopes allow; any front end
  calls it (the sidecar's HTTP API is ``tether.sidecar.secrets``)
"""

from tether.platform.secrets.registry import SecretStores, build_store
from tether.platform.secrets.resolve import SecretRefError, resolve_app_secrets, resolve_secret_refs
from tether.platform.secrets.scoping import ScopeConfigError, SecretScope, SecretScopes

__all__ = [
    "ScopeConfigError",
    "SecretRefError",
    "SecretScope",
    "SecretScopes",
    "SecretStores",
    "build_store",
    "resolve_app_secrets",
    "resolve_secret_refs",
]
