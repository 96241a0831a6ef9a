"""Secret store components turned into stores: one :class:`SecretStores` per app.

Every ``secretstores.*`` component is built when the sidecar starts, so a missing or broken
secrets file stops the sidecar with a message naming the component, not a later request.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from tether.platform.components import Component
from tether.platform.components.registry import ComponentTypes
from tether.platform.secrets.stores import (
    LocalEnvStore,
    LocalFileStore,
    SecretStore,
    SecretStoreConfigError,
    local_env,
    local_file,
)

BLOCK = "secretstores"
#: the secret store types Tether can open (relative file paths from the base directory)
SECRET_STORE_TYPES: ComponentTypes[[Path | None], SecretStore] = ComponentTypes(
    BLOCK,
    "secret store",
    {
        local_file.TYPE: LocalFileStore.from_component,
        local_env.TYPE: lambda component, _base: LocalEnvStore.from_component(component),
    },
    SecretStoreConfigError,
)


def build_store(component: Component, base_dir: Path | None = None) -> SecretStore:
    """The store of one ``secretstores.*`` component; SecretStoreConfigError names it."""
    return SECRET_STORE_TYPES.build(component, base_dir)


class SecretStores(Mapping[str, SecretStore]):
    """The app's secret stores by component name."""

    def __init__(self, stores: Iterable[SecretStore] = ()) -> None:
        self._stores = {store.name: store for store in stores}

    @classmethod
    def from_components(
        cls, components: Iterable[Component], base_dir: Path | None = None
    ) -> SecretStores:
        """Build every ``secretstores.*`` component (relative paths from ``base_dir``, else
        the working directory)."""
        return cls(build_store(c, base_dir) for c in SECRET_STORE_TYPES.of(components))

    def __getitem__(self, name: str) -> SecretStore:
        return self._stores[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._stores)

    def __len__(self) -> int:
        return len(self._stores)
