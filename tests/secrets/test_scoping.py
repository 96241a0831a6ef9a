"""Secret scopes: Dapr's permission table (docs: "How To: Use secret scoping")."""

from __future__ import annotations

from typing import Any

import pytest

from tether.platform.secrets import ScopeConfigError, SecretScopes


def scopes(*items: dict[str, Any]) -> SecretScopes:
    return SecretScopes.from_spec({"secrets": {"scopes": list(items)}})


# (defaultAccess, allowedSecrets, deniedSecrets) -> which of s1, s2, s3 may be read
TABLE = [
    # 1: only default access
    ("allow", None, None, {"s1", "s2", "s3"}),
    ("deny", None, None, set()),
    # 2: default deny with an allowed list
    ("deny", ["s1"], None, {"s1"}),
    # 3: default allow with a denied list
    ("allow", None, ["s1"], {"s2", "s3"}),
    # 4: default allow with an allowed list
    ("allow", ["s1"], None, {"s1"}),
    # 5: default deny with a denied list
    ("deny", None, ["s1"], set()),
    # 6: both lists: the allowed list decides
    ("deny", ["s1"], ["s2"], {"s1"}),
    ("allow", ["s1"], ["s2"], {"s1"}),
    ("allow", ["s1"], ["s1"], {"s1"}),
    # defaultAccess left out means allow; the spelling is case-insensitive
    (None, None, ["s3"], {"s1", "s2"}),
    ("Deny", None, None, set()),
]


@pytest.mark.parametrize(("default", "allowed", "denied", "readable"), TABLE)
def test_dapr_permission_table(
    default: str | None, allowed: list[str] | None, denied: list[str] | None, readable: set[str]
) -> None:
    item: dict[str, Any] = {"storeName": "vault"}
    if default is not None:
        item["defaultAccess"] = default
    if allowed is not None:
        item["allowedSecrets"] = allowed
    if denied is not None:
        item["deniedSecrets"] = denied
    rules = scopes(item)
    assert {s for s in ("s1", "s2", "s3") if rules.allows("vault", s)} == readable


def test_a_store_without_scope_is_open_and_stores_are_independent() -> None:
    rules = scopes({"storeName": "kubernetes", "defaultAccess": "deny"},
                   {"storeName": "local", "allowedSecrets": ["db-pass"]})
    assert not rules.allows("kubernetes", "anything")
    assert rules.allows("local", "db-pass") and not rules.allows("local", "other")
    assert rules.allows("env", "anything")
    assert SecretScopes.from_spec({}).allows("kubernetes", "x")
    assert SecretScopes.from_spec({"secrets": {}}).allows("kubernetes", "x")


@pytest.mark.parametrize(("spec", "problem"), [
    ({"secrets": []}, "spec.secrets must be a mapping"),
    ({"secrets": {"scopes": {}}}, "spec.secrets.scopes must be a list"),
    ({"secrets": {"scopes": ["x"]}}, r"scopes\[0\] must be a mapping"),
    ({"secrets": {"scopes": [{"defaultAccess": "deny"}]}}, r"scopes\[0\].storeName is required"),
    ({"secrets": {"scopes": [{"storeName": "a", "defaultAccess": "maybe"}]}},
     "defaultAccess must be allow or deny"),
    ({"secrets": {"scopes": [{"storeName": "a"}, {"storeName": "a"}]}},
     r"scopes\[1\].storeName 'a' is repeated"),
    ({"secrets": {"scopes": [{"storeName": "a", "allowedSecrets": "x"}]}},
     "allowedSecrets must be a list"),
    ({"secrets": {"scopes": [{"storeName": "a", "deniedSecrets": [1]}]}},
     "deniedSecrets must be a list"),
])
def test_malformed_scopes_name_the_field(spec: dict[str, Any], problem: str) -> None:
    with pytest.raises(ScopeConfigError, match=problem):
        SecretScopes.from_spec(spec)
