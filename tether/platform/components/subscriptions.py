"""Declarative ``kind: Subscription`` resources (dapr.io/v2alpha1 and the older v1alpha1).

Both versions become one :class:`Subscription`: v1alpha1's ``spec.route`` is the default path
with no rules. Match expressions stay strings here; the delivery worker compiles them (CEL).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from tether.platform.components.model import Fields, scalar_text

V1 = "dapr.io/v1alpha1"
V2 = "dapr.io/v2alpha1"
API_VERSIONS = (V2, V1)

#: Dapr's bulk subscribe defaults (pkg/runtime/pubsub/default_bulksub.go)
DEFAULT_BULK_MAX_MESSAGES = 100
DEFAULT_BULK_MAX_AWAIT_MS = 1000


@dataclass(frozen=True, slots=True)
class RouteRule:
    """First matching rule wins; an empty match matches every event (as in Dapr)."""

    match: str
    path: str


@dataclass(frozen=True, slots=True)
class BulkSubscribe:
    enabled: bool = False
    max_messages_count: int = DEFAULT_BULK_MAX_MESSAGES
    max_await_duration_ms: int = DEFAULT_BULK_MAX_AWAIT_MS


@dataclass(frozen=True, slots=True)
class Subscription:
    name: str
    pubsub_name: str
    topic: str
    rules: tuple[RouteRule, ...] = ()
    #: where events go when no rule matches; None means they are acked and dropped
    default_path: str | None = None
    dead_letter_topic: str | None = None
    bulk: BulkSubscribe = field(default_factory=BulkSubscribe)
    metadata: Mapping[str, str] = field(default_factory=dict)
    scopes: tuple[str, ...] = ()
    namespace: str | None = None
    api_version: str = V2

    def visible_to(self, app_id: str) -> bool:
        return not self.scopes or app_id in self.scopes

    def route_paths(self) -> tuple[str, ...]:
        """Every path the app must serve, rules first then the default."""
        paths = [r.path for r in self.rules]
        if self.default_path is not None:
            paths.append(self.default_path)
        return tuple(dict.fromkeys(paths))


def parse_subscription(
    doc: Fields, api_version: str, name: str, namespace: str | None
) -> Subscription:
    """Build a Subscription from a document whose kind and apiVersion are already checked."""
    spec = doc.child("spec")
    if spec is None:
        raise doc.error("spec", "is required")
    rules, default = _routes(spec, api_version)
    return Subscription(
        name=name,
        pubsub_name=spec.required_text("pubsubname"),
        topic=spec.required_text("topic"),
        rules=rules,
        default_path=default,
        dead_letter_topic=spec.text("deadLetterTopic") or None,
        bulk=_bulk(spec.child("bulkSubscribe")),
        metadata=_metadata(spec),
        scopes=doc.texts("scopes"),
        namespace=namespace,
        api_version=api_version,
    )


def _routes(spec: Fields, api_version: str) -> tuple[tuple[RouteRule, ...], str | None]:
    if api_version == V1:
        if spec.has("routes"):
            raise spec.error("routes", f"needs apiVersion {V2} (this document is {V1})")
        return (), spec.required_text("route")
    if spec.has("route"):
        raise spec.error("route", f"is the {V1} form; with {V2} use spec.routes.default")
    routes = spec.child("routes")
    if routes is None:
        raise spec.error("routes", "is required")
    rules = tuple(
        RouteRule(match=(rule.text("match") or "").strip(), path=rule.required_text("path"))
        for rule in routes.children("rules")
    )
    default = routes.text("default") or None
    if not rules and default is None:
        raise routes.error(None, "needs a default path or at least one rule")
    return rules, default


def _bulk(bulk: Fields | None) -> BulkSubscribe:
    if bulk is None:
        return BulkSubscribe()
    return BulkSubscribe(
        enabled=bulk.boolean("enabled", False),
        max_messages_count=bulk.integer("maxMessagesCount", DEFAULT_BULK_MAX_MESSAGES, 1),
        max_await_duration_ms=bulk.integer("maxAwaitDurationMs", DEFAULT_BULK_MAX_AWAIT_MS, 0),
    )


def _metadata(spec: Fields) -> dict[str, str]:
    # a subscription's metadata is a plain map (rawPayload, partitionKey, ...), unlike a
    # component's list of name/value items
    meta = spec.child("metadata")
    if meta is None:
        return {}
    out = {}
    for key, value in meta.data.items():
        if isinstance(value, dict | list):
            raise meta.error(str(key), "must be a plain value")
        out[str(key)] = scalar_text(value)
    return out
