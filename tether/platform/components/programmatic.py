"""Programmatic subscriptions: the JSON list an app returns from ``GET /dapr/subscribe``.

Each entry becomes the same :class:`Subscription` the YAML loader builds. Dapr accepts both
``route`` (one path) and ``routes: {rules, default}``; when both are present ``routes.default``
wins over ``route``, as in daprd. Field names are matched case-insensitively because daprd
decodes with Go's encoding/json, which does; unknown fields are ignored, as there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tether.platform.components.model import Fields, ResourceError, Source
from tether.platform.components.subscriptions import RouteRule, Subscription, _bulk, _metadata

#: where an app answers with its subscriptions (Dapr's app channel)
SUBSCRIBE_PATH = "/dapr/subscribe"

# canonical spellings per nesting level, for the case-insensitive key lookup
_ENTRY_KEYS = (
    "pubsubname",
    "topic",
    "route",
    "routes",
    "metadata",
    "deadLetterTopic",
    "bulkSubscribe",
)
_ROUTES_KEYS = ("rules", "default")
_RULE_KEYS = ("match", "path")
_BULK_KEYS = ("enabled", "maxMessagesCount", "maxAwaitDurationMs")


class ProgrammaticSubscriptionError(ResourceError):
    """A bad ``/dapr/subscribe`` reply, or the app could not be asked.

    ``file`` is where the list came from; ``field`` names the entry and field, e.g.
    ``[2].routes.rules[0].path`` (indices count from 0).
    """

    def __init__(
        self, origin: str, problem: str, *, field: str | None = None, status: int | None = None
    ) -> None:
        super().__init__(origin, problem, field=field)
        #: the app's HTTP status when it answered with an error status, else None
        self.status = status


@dataclass(frozen=True, slots=True)
class _ReplySource(Source):
    """A Source without documents: errors name only the origin and the field."""

    def error(self, field: str | None, problem: str) -> ResourceError:
        return ProgrammaticSubscriptionError(self.file, problem, field=field)


def parse_programmatic(
    payload: object, app_id: str | None, *, origin: str = f"GET {SUBSCRIBE_PATH}"
) -> list[Subscription]:
    """Validate a decoded ``/dapr/subscribe`` reply into subscriptions for ``app_id``.

    ``None`` (JSON ``null``) means no subscriptions, as in daprd. The subscriptions are scoped
    to ``app_id`` (when given): they came from that app and apply only to it.
    Raises ProgrammaticSubscriptionError naming the list index and field.
    """
    if payload is None:
        return []
    if not isinstance(payload, list):
        raise ProgrammaticSubscriptionError(
            origin, f"must be a JSON list of subscriptions, not {_json_type(payload)}"
        )
    source = _ReplySource(origin, 0)
    seen: dict[tuple[str, str], int] = {}
    out = []
    for index, item in enumerate(payload):
        where = f"[{index}]"
        if not isinstance(item, dict):
            raise source.error(where, f"must be an object, not {_json_type(item)}")
        sub = _entry(Fields(_canonical(item, _ENTRY_KEYS), where, source), app_id)
        key = (sub.pubsub_name, sub.topic)
        if key in seen:
            # daprd keeps one subscription per topic; two routes sets for one topic is a bug
            raise source.error(
                where, f"repeats pubsubname {key[0]!r} topic {key[1]!r} (also at [{seen[key]}])"
            )
        seen[key] = index
        out.append(sub)
    return out


def _entry(entry: Fields, app_id: str | None) -> Subscription:
    pubsub = entry.required_text("pubsubname")
    topic = entry.required_text("topic")
    rules, default = _routes(entry)
    bulk = entry.child("bulkSubscribe")
    if bulk is not None:
        bulk = Fields(_canonical(bulk.data, _BULK_KEYS), bulk.path, bulk.source)
    return Subscription(
        # programmatic subscriptions have no resource name; this one is stable and readable
        name=f"{pubsub}/{topic}",
        pubsub_name=pubsub,
        topic=topic,
        rules=rules,
        default_path=default,
        dead_letter_topic=entry.text("deadLetterTopic") or None,
        bulk=_bulk(bulk),
        metadata=_metadata(entry),
        scopes=(app_id,) if app_id else (),
    )


def _routes(entry: Fields) -> tuple[tuple[RouteRule, ...], str | None]:
    route = entry.text("route") or None
    routes = entry.child("routes")
    rules: tuple[RouteRule, ...] = ()
    default = None
    if routes is not None:
        routes = Fields(_canonical(routes.data, _ROUTES_KEYS), routes.path, routes.source)
        rules = tuple(
            _rule(Fields(_canonical(rule.data, _RULE_KEYS), rule.path, rule.source))
            for rule in routes.children("rules")
        )
        default = routes.text("default") or None
    default = default or route
    if not rules and default is None:
        raise entry.error(None, "needs route, routes.default or at least one routes.rules entry")
    return rules, default


def _rule(rule: Fields) -> RouteRule:
    return RouteRule(match=(rule.text("match") or "").strip(), path=rule.required_text("path"))


def _canonical(data: Mapping[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """Rename keys matching a known field case-insensitively: ``pubsubName`` -> ``pubsubname``."""
    by_lower = {n.lower(): n for n in names}
    return {by_lower.get(str(k).lower(), str(k)): v for k, v in data.items()}


def _json_type(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    return repr(value)
