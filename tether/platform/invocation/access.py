"""Dapr's service-invocation access control list, from the called app's Configuration
(``spec.accessControl``), applied by the called app's sidecar.

The rules, as Dapr's (operations/configuration/invoke-allowlist.md):

- no ``accessControl`` (or one with neither ``defaultAction`` nor ``policies``): every
  caller may call every method;
- the global ``defaultAction`` applies to callers without a policy; unset, it is ``deny``
  when there are policies (the safer reading) and ``allow`` otherwise;
- a caller's policy (``appId``, and ``namespace`` when the policy sets one) decides by its
  most specific matching operation (``name`` with ``*`` inside one path segment and ``**``
  across segments, ``httpVerb`` a list or ``*``, ``action`` allow by default); with no
  matching operation, the policy's ``defaultAction``, else the global one.

Dapr identifies the caller by its mTLS SPIFFE id; Tether by the caller id its sidecar puts
on the request (the broker's access control is what keeps a stranger off the topic), so
``trustDomain`` is read and checked for shape only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from tether.platform.errors import ConfigError

ALLOW, DENY = "allow", "deny"


class AccessControlError(ConfigError):
    """A malformed ``spec.accessControl``; the message names the field."""


@dataclass(frozen=True, slots=True)
class Operation:
    name: str
    verbs: frozenset[str]  # upper case; "*" for any
    allow: bool
    pattern: re.Pattern[str]
    #: (literal segments, segments, no "**") : the larger, the more specific
    specificity: tuple[int, int, int]

    def matches(self, path: str, verb: str) -> bool:
        verb_ok = "*" in self.verbs or verb in self.verbs
        return verb_ok and self.pattern.fullmatch(path) is not None


@dataclass(frozen=True, slots=True)
class AppPolicy:
    app_id: str
    namespace: str | None
    default_allow: bool | None
    operations: tuple[Operation, ...]


@dataclass(frozen=True, slots=True)
class AccessControl:
    default_allow: bool
    policies: tuple[AppPolicy, ...]

    @classmethod
    def from_configuration(cls, spec: Mapping[str, Any] | None) -> AccessControl | None:
        """The list in a Configuration's ``spec``; None when it sets none (all allowed)."""
        section = (spec or {}).get("accessControl")
        if section is None:
            return None
        if not isinstance(section, Mapping):
            raise AccessControlError("spec.accessControl must be a mapping")
        where = "spec.accessControl"
        raw_policies = section.get("policies") or []
        if not isinstance(raw_policies, list):
            raise AccessControlError(f"{where}.policies must be a list")
        default = _action(section.get("defaultAction"), f"{where}.defaultAction")
        if default is None and not raw_policies:
            return None
        _text(section.get("trustDomain"), f"{where}.trustDomain")
        policies = tuple(_policy(p, f"{where}.policies[{i}]") for i, p in enumerate(raw_policies))
        return cls(default if default is not None else not policies, policies)

    def allows(self, caller: str, method: str, verb: str, namespace: str | None = None) -> bool:
        """Whether app ``caller`` (in ``namespace``) may call ``verb`` ``method``."""
        path = "/" + method.split("?", 1)[0].lstrip("/")
        verb = verb.upper()
        for policy in self.policies:
            if policy.app_id != caller:
                continue
            if policy.namespace is not None and policy.namespace != namespace:
                continue
            matching = [op for op in policy.operations if op.matches(path, verb)]
            if matching:
                return max(matching, key=lambda op: op.specificity).allow
            if policy.default_allow is not None:
                return policy.default_allow
            return self.default_allow
        return self.default_allow


def _policy(raw: Any, where: str) -> AppPolicy:
    if not isinstance(raw, Mapping):
        raise AccessControlError(f"{where} must be a mapping")
    app_id = _text(raw.get("appId"), f"{where}.appId")
    if not app_id:
        raise AccessControlError(f"{where}.appId is required")
    _text(raw.get("trustDomain"), f"{where}.trustDomain")
    operations = raw.get("operations") or []
    if not isinstance(operations, list):
        raise AccessControlError(f"{where}.operations must be a list")
    return AppPolicy(
        app_id,
        _text(raw.get("namespace"), f"{where}.namespace") or None,
        _action(raw.get("defaultAction"), f"{where}.defaultAction"),
        tuple(_operation(op, f"{where}.operations[{i}]") for i, op in enumerate(operations)),
    )


def _operation(raw: Any, where: str) -> Operation:
    if not isinstance(raw, Mapping):
        raise AccessControlError(f"{where} must be a mapping")
    name = _text(raw.get("name"), f"{where}.name")
    if not name:
        raise AccessControlError(f"{where}.name is required")
    verbs = raw.get("httpVerb", ["*"])
    if isinstance(verbs, str):
        verbs = [verbs]
    if not isinstance(verbs, Sequence) or not all(isinstance(v, str) and v for v in verbs):
        raise AccessControlError(f"{where}.httpVerb must be a list of verbs (or '*')")
    action = _action(raw.get("action"), f"{where}.action")
    path = "/" + name.lstrip("/")
    segments = path.strip("/").split("/")
    literal = sum(1 for s in segments if "*" not in s)
    return Operation(
        path, frozenset(v.upper() for v in verbs), action is not False, _compile(path),
        (literal, len(segments), 0 if "**" in path else 1),
    )


def _compile(path: str) -> re.Pattern[str]:
    # "**" spans segments, "*" stays inside one; "/a/**" also matches "/a" itself
    parts = re.split(r"(\*\*|\*)", path)
    regex = "".join(".*" if p == "**" else "[^/]*" if p == "*" else re.escape(p) for p in parts)
    if regex.endswith("/.*"):
        regex = regex[:-3] + "(?:/.*)?"
    return re.compile(regex)


def _action(value: Any, where: str) -> bool | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str) or value.lower() not in (ALLOW, DENY):
        raise AccessControlError(f"{where} must be 'allow' or 'deny', not {value!r}")
    return value.lower() == ALLOW


def _text(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise AccessControlError(f"{where} must be a string")
    return value
