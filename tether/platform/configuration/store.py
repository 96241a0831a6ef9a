"""The contract every ``configuration.*`` store implements (docs/configuration.md).

A store reads items (``get``) and watches for changes (``watch``). A watch is listening
once ``watch`` returns, so a change made after that is never missed; it yields one dict of
changed items per change. A deleted key is reported as an item with an empty value and
version, the same way on every store.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tether.platform.errors import TetherError


class ConfigurationStoreError(TetherError):
    """The store failed or refused the request: a 500 at the API, as in Dapr."""


@dataclass(frozen=True, slots=True)
class ConfigurationItem:
    value: str
    version: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Dapr's item shape ``{value, version, metadata}``, without an empty version or
        metadata (Dapr's items omit them)."""
        found: dict[str, Any] = {"value": self.value}
        if self.version:
            found["version"] = self.version
        if self.metadata:
            found["metadata"] = dict(self.metadata)
        return found


Items = dict[str, ConfigurationItem]


class ConfigurationWatch(ABC):
    """Changes of some keys, as an async iterator of ``{key: item}``; close() stops it."""

    def __aiter__(self) -> AsyncIterator[Items]:
        return self.changes()

    @abstractmethod
    def changes(self) -> AsyncIterator[Items]:
        """Yield the items of each change until closed; raises ConfigurationStoreError
        when the connection to the store is lost."""

    @abstractmethod
    async def close(self) -> None:
        """Stop listening and release the connection."""

    async def __aenter__(self) -> ConfigurationWatch:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class ConfigurationStore(ABC):
    """One configuration component's storage."""

    async def start(self) -> None:
        """Open connections (default: nothing to open)."""
        return None

    @abstractmethod
    async def get(self, keys: Sequence[str], metadata: Mapping[str, str]) -> Items:
        """The items of ``keys`` that exist; every item when ``keys`` is empty."""

    @abstractmethod
    async def watch(self, keys: Sequence[str], metadata: Mapping[str, str]) -> ConfigurationWatch:
        """Start listening for changes of ``keys`` (every key when empty)."""

    async def close(self) -> None:
        """Release what :meth:`start` opened."""
        return None
