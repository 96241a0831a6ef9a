"""Secret scopes from the app configuration: which secrets the app may read through the API.

The app's ``Configuration`` resource (``tether run --config FILE``) lists per store::

    spec:
      secrets:
        scopes:
          - storeName: local
            defaultAccess: deny          # allow (the default) or deny
            allowedSecrets: [db-pass]    # when not empty: exactly these, nothing else
            deniedSecrets: [admin-key]   # otherwise: never these, the rest per defaultAccess

Dapr's rule, in order: a non-empty ``allowedSecrets`` decides alone; else a name in
``deniedSecrets`` is denied; else ``defaultAccess``. A store with no scope is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.platform.secrets.stores import SecretConfigError

ALLOW = "allow"
DENY = "deny"


class ScopeConfigError(SecretConfigError):
    """A malformed ``spec.secrets`` section; the message names the field."""


@dataclass(frozen=True, slots=True)
class SecretScope:
    """The access rule for one secret store."""

    store: str
    default_access: str = ALLOW
    allowed: frozenset[str] = frozenset()
    denied: frozenset[str] = frozenset()

    def allows(self, name: str) -> bool:
        if self.allowed:
            return name in self.allowed
        if name in self.denied:
            return False
        return self.default_access == ALLOW


@dataclass(frozen=True, slots=True)
class SecretScopes:
    """The scopes of every store the configuration names."""

    by_store: Mapping[str, SecretScope]

    @classmethod
    def none(cls) -> SecretScopes:
        return cls({})

    def allows(self, store: str, name: str) -> bool:
        scope = self.by_store.get(store)
        return True if scope is None else scope.allows(name)

    @classmethod
    def from_spec(cls, spec: Mapping[str, Any]) -> SecretScopes:
        """Parse ``spec.secrets.scopes`` of a Configuration's ``spec`` (Dapr's checks: a
        store named twice, a defaultAccess other than allow/deny)."""
        secrets = spec.get("secrets")
        if secrets is None:
            return cls.none()
        if not isinstance(secrets, dict):
            raise ScopeConfigError("spec.secrets must be a mapping")
        items = secrets.get("scopes")
        if items is None:
            return cls.none()
        if not isinstance(items, list):
            raise ScopeConfigError("spec.secrets.scopes must be a list")
        by_store: dict[str, SecretScope] = {}
        for index, item in enumerate(items):
            scope = _scope(item, f"spec.secrets.scopes[{index}]")
            if scope.store in by_store:
                raise ScopeConfigError(
                    f"spec.secrets.scopes[{index}].storeName {scope.store!r} is repeated"
                )
            by_store[scope.store] = scope
        return cls(by_store)


def _scope(item: Any, where: str) -> SecretScope:
    if not isinstance(item, dict):
        raise ScopeConfigError(f"{where} must be a mapping with storeName")
    store = item.get("storeName")
    if not isinstance(store, str) or not store:
        raise ScopeConfigError(f"{where}.storeName is required")
    access = item.get("defaultAccess")
    if access is None or access == "":
        access = ALLOW
    if not isinstance(access, str) or access.lower() not in (ALLOW, DENY):
        raise ScopeConfigError(f"{where}.defaultAccess must be allow or deny, not {access!r}")
    return SecretScope(
        store=store,
        default_access=access.lower(),
        allowed=_names(item, "allowedSecrets", where),
        denied=_names(item, "deniedSecrets", where),
    )


def _names(item: Mapping[str, Any], key: str, where: str) -> frozenset[str]:
    value = item.get(key)
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ScopeConfigError(f"{where}.{key} must be a list of secret names")
    return frozenset(value)
