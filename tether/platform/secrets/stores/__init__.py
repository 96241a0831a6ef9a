"""Secret store implementations (``secretstores.local.file``, ``secretstores.local.env``)."""

from .base import (
    Secret,
    SecretConfigError,
    SecretNotFoundError,
    SecretStore,
    SecretStoreConfigError,
    SecretStoreError,
    SecretText,
)
from .local_env import LocalEnvStore
from .local_file import LocalFileStore

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
