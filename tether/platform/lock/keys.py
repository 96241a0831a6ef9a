"""Dapr's lock key prefixes (``keyPrefix`` metadata): apps sharing a store stay apart.

``appid`` (the default) gives ``lock||<app id>||<resource>``, ``name`` gives
``lock||<store name>||<resource>``, ``none`` gives ``lock||<resource>``, and any other
value is used as a literal prefix: ``lock||<value>||<resource>``. Neither the resource nor
the prefix may contain ``||``, so one app cannot forge another's key.
"""

from __future__ import annotations

from dataclasses import dataclass

from tether.platform.errors import TetherError

SEPARATOR = "||"
API_PREFIX = "lock"


class LockKeyError(TetherError, ValueError):
    """A resource id or prefix containing the separator."""


def check_part(value: str) -> None:
    if SEPARATOR in value:
        raise LockKeyError(f"input key/keyPrefix {value!r} can't contain {SEPARATOR!r}")


@dataclass(frozen=True, slots=True)
class KeyPrefix:
    """How one lock component scopes resource ids into store keys."""

    strategy: str
    store_name: str
    app_id: str

    @classmethod
    def from_metadata(cls, value: str | None, store_name: str, app_id: str) -> KeyPrefix:
        # Dapr lower-cases the strategy, literal prefixes included
        strategy = (value or "appid").lower()
        check_part(strategy)
        return cls(strategy, store_name, app_id)

    def key(self, resource_id: str) -> str:
        check_part(resource_id)
        if self.strategy == "none" or (self.strategy == "appid" and not self.app_id):
            scope = None
        elif self.strategy == "appid":
            scope = self.app_id
        elif self.strategy == "name":
            scope = self.store_name
        else:
            scope = self.strategy
        parts = [API_PREFIX] if scope is None else [API_PREFIX, scope]
        return SEPARATOR.join([*parts, resource_id])
