"""Dapr's lock keys: ``lock||<prefix>||<resource>``, the prefix chosen by the component's
``keyPrefix`` as for state stores (:class:`~tether.platform.components.keys.KeyScheme`):
``appid`` (the default), ``name`` (the store's name), ``none`` (no prefix) or a literal
value. Neither the resource nor the prefix may contain ``||``, so one app cannot forge
another's key.
"""

from __future__ import annotations

from tether.platform.components.keys import SEPARATOR, KeyScheme

API_PREFIX = "lock"


def lock_key(scheme: KeyScheme, resource_id: str) -> str:
    """The store key of ``resource_id``; InvalidKeyError when it contains ``||``."""
    return API_PREFIX + SEPARATOR + scheme.store_key(resource_id)
