"""Dapr's key scheme for the state API (``keyPrefix``)."""

from __future__ import annotations

import pytest

from tether.platform.components import Component
from tether.platform.components.keys import InvalidKeyError, KeyScheme


def scheme(prefix: str | None, app_id: str = "shop") -> KeyScheme:
    metadata = {} if prefix is None else {"keyPrefix": prefix}
    return KeyScheme.for_component(Component(name="store", type="state.in-memory",
                                             metadata=metadata), app_id)


@pytest.mark.parametrize(("prefix", "stored"), [
    (None, "shop||k"), ("appid", "shop||k"), ("AppID", "shop||k"), ("name", "store||k"),
    ("none", "k"), ("Tenant-A", "tenant-a||k"), ("namespace", "shop||k"),
])
def test_key_prefixes(prefix: str | None, stored: str) -> None:
    keys = scheme(prefix)
    assert keys.store_key("k") == stored
    assert keys.app_key(stored) == "k"


def test_namespace_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NAMESPACE", "prod")
    assert scheme("namespace").store_key("k") == "prod.shop||k"


def test_no_app_id_means_no_appid_prefix() -> None:
    assert scheme(None, app_id="").store_key("k") == "k"


def test_the_separator_is_reserved() -> None:
    with pytest.raises(InvalidKeyError):
        scheme(None).store_key("a||b")
    with pytest.raises(InvalidKeyError):
        scheme("a||b")
