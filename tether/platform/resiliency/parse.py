"""``kind: Resiliency`` documents read into typed specs; every mistake names file and field.

The loader (:mod:`tether.platform.components.loader`) keeps a Resiliency document as an
:class:`~tether.platform.components.OtherResource` with its data; this module reads it.
Daprd logs a Resiliency it cannot decode and runs without it; Tether refuses to start,
as it does for a bad Component: a retry policy that silently does not apply is found in
an outage, not before. Unknown keys are refused for the same reason (a ``maxRetry`` typo).

Durations are Go durations (``5s``, ``1m30s``, ``500ms``); a bare number is milliseconds,
as Dapr reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.platform.components import OtherResource
from tether.platform.components.metadata import DurationError, parse_duration
from tether.platform.components.model import Fields, ResourceError, Source
from tether.platform.resiliency.breaker import BreakerPolicy, Trip, TripExpressionError
from tether.platform.resiliency.retry import (
    CONSTANT,
    EXPONENTIAL,
    FOREVER,
    GRPC_CODES,
    HTTP_CODES,
    CodeRangeError,
    RetryPolicy,
    StatusCodes,
)

log = logging.getLogger(__name__)

KIND = "Resiliency"
API_VERSION = "dapr.io/v1alpha1"
#: Dapr's built-in retries; a user may override them, but not below 3 retries
BUILT_IN_SERVICE_RETRIES = "DaprBuiltInServiceRetries"
BUILT_IN_RETRIES = (
    BUILT_IN_SERVICE_RETRIES, "DaprBuiltInActorRetries", "DaprBuiltInActorReminderRetries",
    "DaprBuiltInInitializationRetries",
)
#: may not be overridden at all (Dapr ignores the attempt with a warning)
PROTECTED_RETRIES = ("DaprBuiltInActorNotFoundRetries",)
MIN_BUILT_IN_RETRIES = 3

_RETRY_KEYS = ("policy", "duration", "maxInterval", "maxRetries", "matching")
_BREAKER_KEYS = ("maxRequests", "interval", "timeout", "trip")
_TARGET_KEYS = ("timeout", "retry", "circuitBreaker")
_ACTOR_KEYS = (*_TARGET_KEYS, "circuitBreakerScope", "circuitBreakerCacheSize")
_ACTOR_SCOPES = ("type", "id", "both")


@dataclass(frozen=True, slots=True)
class PolicyNames:
    """The policies one target names; ``where`` is the field, for errors."""

    timeout: str | None = None
    retry: str | None = None
    circuit_breaker: str | None = None
    where: Fields | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ComponentTarget:
    inbound: PolicyNames | None = None
    outbound: PolicyNames | None = None


@dataclass(frozen=True, slots=True)
class ResiliencySpec:
    """One Resiliency document."""

    name: str
    source: Source
    scopes: tuple[str, ...] = ()
    timeouts: Mapping[str, float] = field(default_factory=dict)
    retries: Mapping[str, RetryPolicy] = field(default_factory=dict)
    breakers: Mapping[str, BreakerPolicy] = field(default_factory=dict)
    apps: Mapping[str, PolicyNames] = field(default_factory=dict)
    actors: Mapping[str, PolicyNames] = field(default_factory=dict)
    components: Mapping[str, ComponentTarget] = field(default_factory=dict)

    def visible_to(self, app_id: str) -> bool:
        return not self.scopes or app_id in self.scopes


def resiliency_specs(resources: Iterable[OtherResource]) -> list[ResiliencySpec]:
    """Every ``kind: Resiliency`` among ``resources``, in load order (ResourceError if bad)."""
    return [parse_resiliency(r) for r in resources if r.kind == KIND]


def parse_resiliency(resource: OtherResource) -> ResiliencySpec:
    doc = Fields(resource.data, "", resource.source)
    if resource.api_version != API_VERSION:
        raise doc.error(
            "apiVersion", f"{resource.api_version!r} is not supported for Resiliency; "
                          f"use {API_VERSION}")
    meta = doc.child("metadata")
    if meta is None:
        raise doc.error("metadata.name", "is required")
    name = meta.required_text("name")
    spec = doc.child("spec")
    if spec is None:
        raise doc.error("spec.policies", "is required")
    policies = spec.child("policies")
    if policies is None:
        raise spec.error("policies", "is required")
    _only(policies, ("timeouts", "retries", "circuitBreakers"))
    _only(spec, ("policies", "targets"))
    targets = spec.child("targets")
    if targets is not None:
        _only(targets, ("apps", "actors", "components"))
    return ResiliencySpec(
        name=name,
        source=resource.source,
        scopes=doc.texts("scopes"),
        timeouts=_timeouts(policies.child("timeouts")),
        retries=_retries(policies.child("retries")),
        breakers=_breakers(policies.child("circuitBreakers")),
        apps=_named_targets(targets and targets.child("apps"), _TARGET_KEYS),
        actors=_named_targets(targets and targets.child("actors"), _ACTOR_KEYS),
        components=_components(targets and targets.child("components")),
    )


def _timeouts(fields: Fields | None) -> dict[str, float]:
    if fields is None:
        return {}
    return {name: _duration(fields, name) for name in _names(fields)}


def _retries(fields: Fields | None) -> dict[str, RetryPolicy]:
    out: dict[str, RetryPolicy] = {}
    for name in _names(fields):
        assert fields is not None
        entry = _mapping(fields, name)
        _only(entry, _RETRY_KEYS)
        policy = (entry.text("policy") or CONSTANT).lower()
        if policy not in (CONSTANT, EXPONENTIAL):
            raise entry.error("policy", f"must be {CONSTANT} or {EXPONENTIAL}, not {policy!r}")
        matching = entry.child("matching")
        if matching is not None:
            _only(matching, ("httpStatusCodes", "gRPCStatusCodes"))
        if name in PROTECTED_RETRIES:
            raise fields.error(name, "is a built-in policy of Dapr's that cannot be overridden")
        retries = entry.integer("maxRetries", FOREVER, FOREVER)
        if name in BUILT_IN_RETRIES and 0 <= retries < MIN_BUILT_IN_RETRIES:
            log.warning("%s: %s.maxRetries raised to %d, the built-in minimum",
                        fields.source, fields.name_of(name), MIN_BUILT_IN_RETRIES)
            retries = MIN_BUILT_IN_RETRIES
        out[name] = RetryPolicy(
            name=name,
            policy=policy,
            duration=_duration(entry, "duration", 5.0),
            max_interval=_duration(entry, "maxInterval", 60.0),
            max_retries=retries,
            http_codes=_codes(matching, "httpStatusCodes", HTTP_CODES),
            grpc_codes=_codes(matching, "gRPCStatusCodes", GRPC_CODES),
        )
    return out


def _breakers(fields: Fields | None) -> dict[str, BreakerPolicy]:
    out: dict[str, BreakerPolicy] = {}
    for name in _names(fields):
        assert fields is not None
        entry = _mapping(fields, name)
        _only(entry, _BREAKER_KEYS)
        trip = entry.text("trip")
        try:
            compiled = Trip(trip) if trip else None
        except TripExpressionError as exc:
            raise entry.error("trip", str(exc)) from None
        out[name] = BreakerPolicy(
            name=name,
            max_requests=entry.integer("maxRequests", 1, 0),
            interval=_duration(entry, "interval", 0.0),
            timeout=_duration(entry, "timeout", 60.0),
            trip=compiled,
        )
    return out


def _named_targets(fields: Fields | None, keys: tuple[str, ...]) -> dict[str, PolicyNames]:
    out: dict[str, PolicyNames] = {}
    for name in _names(fields):
        assert fields is not None
        out[name] = _policy_names(_mapping(fields, name), keys)
    return out


def _components(fields: Fields | None) -> dict[str, ComponentTarget]:
    out: dict[str, ComponentTarget] = {}
    for name in _names(fields):
        assert fields is not None
        entry = _mapping(fields, name)
        _only(entry, ("inbound", "outbound"))
        inbound, outbound = entry.child("inbound"), entry.child("outbound")
        out[name] = ComponentTarget(
            inbound=_policy_names(inbound, _TARGET_KEYS) if inbound is not None else None,
            outbound=_policy_names(outbound, _TARGET_KEYS) if outbound is not None else None,
        )
    return out


def _policy_names(entry: Fields, keys: tuple[str, ...]) -> PolicyNames:
    _only(entry, keys)
    if "circuitBreakerScope" in keys:  # an actor target
        scope = entry.text("circuitBreakerScope")
        if entry.text("circuitBreaker") and not scope:
            raise entry.error("circuitBreakerScope", "is required with a circuitBreaker")
        if scope and scope not in _ACTOR_SCOPES:
            raise entry.error("circuitBreakerScope", f"must be one of {', '.join(_ACTOR_SCOPES)}")
        entry.integer("circuitBreakerCacheSize", 0, 0)
    return PolicyNames(
        timeout=entry.text("timeout") or None,
        retry=entry.text("retry") or None,
        circuit_breaker=entry.text("circuitBreaker") or None,
        where=entry,
    )


def _names(fields: Fields | None) -> list[str]:
    if fields is None:
        return []
    for key in fields.data:
        if not isinstance(key, str) or not key:
            raise fields.error(None, f"has a key {key!r} that is not a name")
    return list(fields.data)


def _mapping(fields: Fields, key: str) -> Fields:
    child = fields.child(key)
    if child is None:
        raise fields.error(key, "must be a mapping, not empty")
    return child


def _only(fields: Fields, keys: tuple[str, ...]) -> None:
    for key in fields.data:
        if key not in keys:
            raise fields.error(str(key), f"is not a known field (expected one of: "
                                         f"{', '.join(keys)})")


def _duration(fields: Fields, key: str, default: float | None = None) -> float:
    value: Any = fields.data.get(key)
    if value is None:
        if default is None:
            raise fields.error(key, "is required")
        return default
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise fields.error(key, f"must be a duration like 5s or 500ms, not {value!r}")
    if isinstance(value, int | float):
        return _milliseconds(fields, key, value)
    text = value.strip()
    if text.lstrip("+").isdigit():
        return _milliseconds(fields, key, int(text))
    try:
        return parse_duration(text)
    except DurationError as exc:
        raise fields.error(key, str(exc)) from None


def _milliseconds(fields: Fields, key: str, value: float) -> float:
    if value < 0:
        raise fields.error(key, f"must not be negative, not {value!r}")
    return value / 1000  # Dapr reads a bare number as milliseconds


def _codes(matching: Fields | None, key: str, valid: tuple[int, int]) -> StatusCodes:
    if matching is None:
        return StatusCodes()
    value = matching.data.get(key)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # a single code written without quotes
    if value is not None and not isinstance(value, str):
        raise matching.error(key, f"must be a string like \"429,500-599\", not {value!r}")
    try:
        return StatusCodes.parse(value, valid)
    except CodeRangeError as exc:
        raise matching.error(key, str(exc)) from None


def unknown_policy(names: PolicyNames, key: str, value: str, kind: str) -> ResourceError:
    """A target naming a policy no visible Resiliency defines."""
    assert names.where is not None
    return names.where.error(key, f"names {kind} policy {value!r}, which is not defined")
