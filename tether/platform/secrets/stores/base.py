"""What every secret store offers the sidecar: one secret by name, or all of them.

A secret is a map of keys to values: ``{"db-pass": "s3cret"}`` for a store with
name/value semantics, several keys for a multi-valued secret. Values are wrapped in
:class:`SecretText` so that a stray ``repr`` (a log line, an error message) shows a mask.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from tether.platform.blocks import BlockConfigError
from tether.platform.errors import TetherError

Secret = dict[str, str]


class SecretText(str):
    """A secret value: a plain ``str`` everywhere except in its ``repr``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "'***'"


class SecretStoreError(TetherError):
    """A store that cannot answer (an unreadable file); the message holds no secret value."""


class SecretConfigError(BlockConfigError):
    """Secrets set up wrongly (a store, a reference, a scope): the sidecar does not start."""


class SecretStoreConfigError(SecretConfigError):
    """A secret store component Tether cannot build; the message names it and the field."""


class SecretNotFoundError(SecretStoreError):
    """The store has no secret of that name."""

    def __init__(self, store: str, name: str) -> None:
        super().__init__(f"secret {name!r} not found in secret store {store!r}")
        self.store = store
        self.name = name


class SecretStore(Protocol):
    """One secret store component, built by :mod:`tether.platform.secrets.registry`."""

    name: str

    async def get(self, name: str, metadata: Mapping[str, str]) -> Secret:
        """The secret ``name`` as a key -> value map; raises SecretNotFoundError."""

    async def bulk(self, metadata: Mapping[str, str]) -> dict[str, Secret]:
        """Every secret of the store: secret name -> key -> value."""
