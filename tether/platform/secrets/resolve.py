"""``secretKeyRef`` values in component metadata, replaced by the secrets they name.

The sidecar calls :func:`resolve_secret_refs` once at start, after the secret stores are
built and before anything else (the pub/sub registry, the other blocks) reads a component:
they then see plain strings. The store is the component's ``auth.secretStore``; without one
Tether uses the app's only secret store (Dapr would use ``kubernetes``) and refuses to guess
between several. A reference that cannot be resolved stops the sidecar with a message that
names the component, the field, the store and the secret, never a value.

Like Dapr, component references are not subject to the app configuration's secret scopes:
those limit what the app may read through the API, not what its operator configured.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from pathlib import Path

from tether.platform.components import Component, MetadataValue, SecretKeyRef
from tether.platform.secrets.registry import BLOCK, SecretStores
from tether.platform.secrets.stores import (
    SecretConfigError,
    SecretNotFoundError,
    SecretStore,
    SecretStoreError,
    SecretText,
)


class SecretRefError(SecretConfigError):
    """A secretKeyRef that cannot be resolved; the message names what and where."""


def _where(component: Component) -> str:
    source = f" ({component.source})" if component.source is not None else ""
    return f"component {component.name!r}{source}"


def store_for(component: Component, stores: Mapping[str, SecretStore]) -> SecretStore:
    """The store ``component``'s references read from (auth.secretStore, else the only one)."""
    wanted = component.secret_store
    known = ", ".join(sorted(stores)) or "none"
    if wanted:
        store = stores.get(wanted)
        if store is None:
            raise SecretRefError(
                f"{_where(component)}: auth.secretStore {wanted!r} is not a secret store of "
                f"this app (secret stores: {known})"
            )
        return store
    if len(stores) == 1:
        return next(iter(stores.values()))
    refs = ", ".join(sorted(component.secret_refs()))
    if not stores:
        raise SecretRefError(
            f"{_where(component)}: metadata {refs} uses secretKeyRef, but the app has no "
            "secret store component (add one, e.g. secretstores.local.file)"
        )
    raise SecretRefError(
        f"{_where(component)}: metadata {refs} uses secretKeyRef and the app has several "
        f"secret stores ({known}): set auth.secretStore to one of them"
    )


async def resolve_component(component: Component, stores: Mapping[str, SecretStore]) -> Component:
    """``component`` with each secretKeyRef replaced by its secret's value."""
    refs = component.secret_refs()
    if not refs:
        return component
    if component.block == BLOCK:
        raise SecretRefError(
            f"{_where(component)}: metadata {', '.join(sorted(refs))}: a secret store cannot "
            "take its own metadata from a secretKeyRef"
        )
    store = store_for(component, stores)
    resolved: dict[str, MetadataValue] = dict(component.metadata)
    for field, ref in refs.items():
        resolved[field] = await _value(component, field, ref, store)
    return replace(component, metadata=resolved)


async def _value(component: Component, field: str, ref: SecretKeyRef, store: SecretStore) -> str:
    what = f"{_where(component)}: metadata {field}: secretKeyRef {ref.name!r}"
    try:
        secret = await store.get(ref.name, {})
    except SecretNotFoundError:
        raise SecretRefError(
            f"{what}: secret store {store.name!r} has no secret {ref.name!r}"
        ) from None
    except SecretStoreError as exc:
        raise SecretRefError(f"{what}: secret store {store.name!r} failed: {exc}") from None
    if ref.key not in secret:
        raise SecretRefError(
            f"{what}: secret {ref.name!r} in secret store {store.name!r} has no key {ref.key!r}"
        )
    return SecretText(secret[ref.key])


async def resolve_secret_refs(
    components: Iterable[Component], stores: SecretStores
) -> tuple[Component, ...]:
    """Every component with its references resolved; SecretRefError for the first that fails."""
    return tuple([await resolve_component(c, stores) for c in components])


async def resolve_app_secrets(
    components: Iterable[Component], base_dir: Path | None = None
) -> tuple[Component, ...]:
    """What the sidecar calls at start: build the app's secret stores and resolve every
    component's references with them. Raises SecretConfigError (a store or a reference)."""
    items = tuple(components)
    return await resolve_secret_refs(items, SecretStores.from_components(items, base_dir))
