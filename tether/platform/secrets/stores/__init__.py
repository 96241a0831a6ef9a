"""Secret store implementations (``secretstores.local.file``, ``secretstores.local.env``)."""

from tether.platform.secrets.stores.base import (
    Secret,
    SecretConfigError,
    SecretNotFoundError,
    SecretStore,
    SecretStoreConfigError,
    SecretStoreError,
    SecretText,
)
from tether.platform.secrets.stores.local_env import LocalEnvStore
from tether.platform.secrets.stores.local_file import LocalFileStore

__all__ = [
    "LocalEnvStore",
    "LocalFileStore",
    "Secret",
    "SecretConfigError",
    "SecretNotFoundError",
    "SecretStore",
    "SecretStoreConfigError",
    "SecretStoreError",
    "SecretText",
]
