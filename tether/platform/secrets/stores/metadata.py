"""Reading a secret store component's metadata (names matched case-insensitively, as Dapr)."""

from __future__ import annotations

from tether.platform.components import Component
from tether.platform.secrets.stores.base import SecretStoreConfigError


def where(component: Component) -> str:
    source = f" ({component.source})" if component.source is not None else ""
    return f"secret store {component.name!r}{source}"


def text(component: Component, key: str) -> str | None:
    """A plain metadata value, the key matched case-insensitively; refs are refused."""
    for name, value in component.metadata.items():
        if name.lower() != key.lower():
            continue
        if not isinstance(value, str):
            # a secret store is what resolves references: it cannot depend on one itself
            raise SecretStoreConfigError(
                f"{where(component)}: metadata {name} must be a plain value, not a secretKeyRef"
            )
        return value
    return None


def boolean(component: Component, key: str, default: bool) -> bool:
    value = text(component, key)
    if value is None or value == "":
        return default
    lowered = value.strip().lower()
    # Dapr decodes metadata booleans with strconv.ParseBool's spellings
    if lowered in ("true", "t", "1"):
        return True
    if lowered in ("false", "f", "0"):
        return False
    raise SecretStoreConfigError(
        f"{where(component)}: metadata {key} must be true or false, not {value!r}"
    )
