"""Dapr's invocation access control list (tether/platform/invocation/access.py): the rules
of Dapr's invoke-allowlist page, one case each, and malformed lists named by field."""

from __future__ import annotations

from typing import Any

import pytest

from tether.platform.invocation.access import AccessControl, AccessControlError


def acl(section: dict[str, Any] | None) -> AccessControl | None:
    return AccessControl.from_configuration({} if section is None else {"accessControl": section})


def test_no_list_or_an_empty_one_allows_everything() -> None:
    assert acl(None) is None
    assert acl({"trustDomain": "public"}) is None


def test_the_global_default_applies_to_callers_without_a_policy() -> None:
    control = acl({"defaultAction": "deny"})
    assert control is not None and not control.allows("anyone", "/orders", "POST")
    control = acl({"defaultAction": "allow", "policies": [{"appId": "a", "defaultAction": "deny"}]})
    assert control is not None
    assert control.allows("b", "/orders", "POST") and not control.allows("a", "/orders", "POST")


def test_policies_without_a_global_default_deny_the_others() -> None:
    control = acl({"policies": [{"appId": "a", "defaultAction": "allow"}]})
    assert control is not None
    assert control.allows("a", "/x", "GET") and not control.allows("b", "/x", "GET")


def test_the_most_specific_operation_decides_with_verbs_and_wildcards() -> None:
    control = acl({
        "defaultAction": "deny",
        "policies": [{
            "appId": "caller", "defaultAction": "deny", "namespace": "prod",
            "operations": [
                {"name": "/orders/**", "httpVerb": ["*"], "action": "allow"},
                {"name": "/orders/*/cancel", "httpVerb": ["POST"], "action": "deny"},
                {"name": "/stock", "httpVerb": ["GET"]},  # action defaults to allow
            ],
        }],
    })
    assert control is not None
    allows = control.allows
    assert allows("caller", "/orders", "GET", "prod")
    assert allows("caller", "orders/1/lines/2", "DELETE", "prod")
    assert not allows("caller", "/orders/1/cancel", "POST", "prod")  # more specific: deny
    assert allows("caller", "/orders/1/cancel", "GET", "prod")  # verb not matched: /orders/**
    assert allows("caller", "/stock?sku=1", "get", "prod")
    assert not allows("caller", "/stock", "PUT", "prod")  # policy default
    assert not allows("caller", "/stock", "GET", "dev")  # namespace differs: global default


@pytest.mark.parametrize(("section", "field"), [
    ({"defaultAction": "maybe"}, "spec.accessControl.defaultAction"),
    ({"policies": {"appId": "a"}}, "spec.accessControl.policies"),
    ({"policies": [{"defaultAction": "allow"}]}, "spec.accessControl.policies[0].appId"),
    ({"policies": [{"appId": "a", "operations": [{"name": "/x", "action": "yes"}]}]},
     "spec.accessControl.policies[0].operations[0].action"),
    ({"policies": [{"appId": "a", "operations": [{"name": "/x", "httpVerb": [1]}]}]},
     "spec.accessControl.policies[0].operations[0].httpVerb"),
    ({"policies": [{"appId": "a", "operations": [{"httpVerb": ["GET"]}]}]},
     "spec.accessControl.policies[0].operations[0].name"),
])
def test_a_malformed_list_names_the_field(section: dict[str, Any], field: str) -> None:
    with pytest.raises(AccessControlError, match=field.replace("[", r"\[").replace("]", r"\]")):
        acl(section)
