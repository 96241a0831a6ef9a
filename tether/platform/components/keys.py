"""Dapr's key scheme: ``<prefix>||<key>``, the prefix chosen by the component's ``keyPrefix``
(state stores; lock stores put ``lock||`` before it).

``appid`` (the default) gives every app its own keys in a shared store, ``name`` shares the
keys of one store among every app that uses it, ``namespace`` prefixes with
``<NAMESPACE>.<appid>`` (the ``NAMESPACE`` environment variable; the app id alone without
it), ``none`` stores the key as given, and any other value is used, lower-cased, as the
prefix itself (all as Dapr does). ``||`` is reserved: a key or prefix containing it is refused.
"""

from __future__ import annotations

from tether.platform import env
from tether.platform.components import Component
from tether.platform.errors import TetherError

SEPARATOR = "||"
KEY_PREFIX = "keyPrefix"
APPID = "appid"
NAME = "name"
NAMESPACE = "namespace"
NONE = "none"


class InvalidKeyError(TetherError, ValueError):
    """A key (or keyPrefix) that contains the reserved separator."""


def check_key(key: str) -> None:
    if SEPARATOR in key:
        raise InvalidKeyError(f"input key/keyPrefix {key!r} can't contain {SEPARATOR!r}")


class KeyScheme:
    """Turns the app's keys into the store's keys and back, for one store and one app."""

    def __init__(self, prefix: str) -> None:
        #: what goes before every key ("" for keyPrefix none); ends with the separator
        self.prefix = prefix

    @classmethod
    def for_component(cls, component: Component, app_id: str) -> KeyScheme:
        return cls.from_prefix(component.value(KEY_PREFIX), component.name, app_id)

    @classmethod
    def from_prefix(cls, value: str | None, store_name: str, app_id: str) -> KeyScheme:
        """The scheme a ``keyPrefix`` value (None: appid) picks for store ``store_name``."""
        raw = value or APPID
        strategy = raw.lower()
        if strategy == NONE:
            return cls("")
        if strategy == NAME:
            return cls(store_name + SEPARATOR)
        if strategy == APPID:
            return cls(app_id + SEPARATOR if app_id else "")
        if strategy == NAMESPACE:
            if not app_id:
                return cls("")
            namespace = env.namespace()
            return cls((f"{namespace}.{app_id}" if namespace else app_id) + SEPARATOR)
        check_key(raw)
        return cls(strategy + SEPARATOR)  # a literal prefix, lower-cased as Dapr does

    def store_key(self, key: str) -> str:
        """The key as the store sees it; InvalidKeyError for a key containing ``||``."""
        check_key(key)
        return self.prefix + key

    def app_key(self, stored: str) -> str:
        """The key as the app sees it (Dapr's GetOriginalStateKey: what follows the first
        separator)."""
        if self.prefix and stored.startswith(self.prefix):
            return stored[len(self.prefix):]
        _, sep, rest = stored.partition(SEPARATOR)
        return rest if sep else stored
