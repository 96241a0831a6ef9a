"""Loading declarative Subscription resources (dapr.io/v2alpha1 and v1alpha1)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.platform.components import (
    BulkSubscribe,
    ResourceError,
    RouteRule,
    Subscription,
    load_resources,
)

SUBSCRIPTIONS = Path(__file__).parent / "resources" / "subscriptions"


@pytest.fixture
def subscriptions() -> dict[str, Subscription]:
    loaded = load_resources(SUBSCRIPTIONS, "app1")
    assert loaded.components == ()  # a folder with subscriptions only gets no defaults
    return {s.name: s for s in loaded.subscriptions}


def test_files_load_in_name_order(subscriptions: dict[str, Subscription]) -> None:
    # orders-v1.yaml sorts before widgets.yaml
    assert list(subscriptions) == ["order-v1", "myevent-subscription", "order-bulk"]


def test_v2_rules_keep_their_order(subscriptions: dict[str, Subscription]) -> None:
    sub = subscriptions["myevent-subscription"]
    assert sub.api_version == "dapr.io/v2alpha1"
    assert (sub.pubsub_name, sub.topic) == ("pubsub", "inventory")
    assert sub.rules == (
        RouteRule('event.type == "widget"', "/widgets"),
        RouteRule('event.type == "gadget" && int(event.data.amount) > 10000', "/gadgets"),
        RouteRule('event.type == "gizmo"', "/widgets"),
    )
    assert sub.default_path == "/products"
    assert sub.route_paths() == ("/widgets", "/gadgets", "/products")
    assert sub.dead_letter_topic == "poisonMessages"
    assert sub.bulk == BulkSubscribe()  # disabled, Dapr's defaults
    assert sub.bulk.max_messages_count == 100 and sub.bulk.max_await_duration_ms == 1000
    assert sub.scopes == ("app1", "app2")
    assert sub.visible_to("app2") and not sub.visible_to("app3")


def test_v2_bulk_and_metadata(subscriptions: dict[str, Subscription]) -> None:
    sub = subscriptions["order-bulk"]
    assert sub.rules == () and sub.default_path == "/checkout"
    assert sub.bulk == BulkSubscribe(enabled=True, max_messages_count=100, max_await_duration_ms=40)
    assert dict(sub.metadata) == {"rawPayload": "true", "maxConcurrency": "8"}
    assert sub.dead_letter_topic is None
    assert sub.visible_to("anyone")


def test_v1_route_is_the_default_path(subscriptions: dict[str, Subscription]) -> None:
    sub = subscriptions["order-v1"]
    assert sub.api_version == "dapr.io/v1alpha1"
    assert sub.rules == ()
    assert sub.default_path == "/checkout"
    assert (sub.pubsub_name, sub.topic) == ("order-pub-sub", "orders")
    assert sub.dead_letter_topic == "poisonMessages"
    assert sub.scopes == ("orderprocessing", "checkout")


def test_subscriptions_for_an_app() -> None:
    loaded = load_resources(SUBSCRIPTIONS, "checkout")
    assert [s.name for s in loaded.subscriptions_for("checkout")] == ["order-v1", "order-bulk"]
    assert [s.name for s in loaded.subscriptions_for("app1")] == [
        "myevent-subscription",
        "order-bulk",
    ]


def test_rule_without_match_matches_everything(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(V2 + "    rules:\n      - path: /all\n")
    (sub,) = load_resources(tmp_path, "app1").subscriptions
    assert sub.rules == (RouteRule("", "/all"),) and sub.default_path is None


V2 = """\
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: sub
spec:
  pubsubname: pubsub
  topic: orders
  routes:
"""
V1 = """\
apiVersion: dapr.io/v1alpha1
kind: Subscription
metadata:
  name: sub
spec:
  pubsubname: pubsub
  topic: orders
"""

SUBSCRIPTION_ERRORS = [
    (V2.replace("  topic: orders\n", "") + "    default: /o\n", "spec.topic is required"),
    (V2.replace("  pubsubname: pubsub\n", "") + "    default: /o\n", "spec.pubsubname is required"),
    (
        V2.replace("  name: sub\n", "  namespace: x\n") + "    default: /o\n",
        "metadata.name is required",
    ),
    (V2.split("spec:")[0], "spec is required"),
    (V2.replace("  routes:\n", ""), "spec.routes is required"),
    (V2 + "    rules: []\n", "spec.routes needs a default path or at least one rule"),
    (V2 + "    rules:\n      - match: x\n", "spec.routes.rules[0].path is required"),
    (V2 + "    rules: {match: x}\n", "spec.routes.rules must be a list, not a mapping"),
    (
        V2 + "    default: /o\n  route: /orders\n",
        "spec.route is the dapr.io/v1alpha1 form; with dapr.io/v2alpha1 use spec.routes.default",
    ),
    (V1, "spec.route is required"),
    (
        V1 + "  route: /o\n  routes:\n    default: /o\n",
        "spec.routes needs apiVersion dapr.io/v2alpha1 (this document is dapr.io/v1alpha1)",
    ),
    (
        V2.replace("v2alpha1", "v3") + "    default: /o\n",
        "apiVersion 'dapr.io/v3' is not supported for Subscription; "
        "use dapr.io/v2alpha1 or dapr.io/v1alpha1",
    ),
    (
        V2 + "    default: /o\n  bulkSubscribe:\n    enabled: yes please\n",
        "spec.bulkSubscribe.enabled must be true or false, not 'yes please'",
    ),
    (
        V2 + "    default: /o\n  bulkSubscribe:\n    maxMessagesCount: 0\n",
        "spec.bulkSubscribe.maxMessagesCount must be at least 1, not 0",
    ),
    (
        V2 + "    default: /o\n  bulkSubscribe:\n    maxAwaitDurationMs: 1s\n",
        "spec.bulkSubscribe.maxAwaitDurationMs must be an integer, not '1s'",
    ),
    (
        V2 + "    default: /o\n  metadata:\n    rawPayload: {a: b}\n",
        "spec.metadata.rawPayload must be a plain value",
    ),
    (
        V2 + "    default: /o\n  deadLetterTopic: [a]\n",
        "spec.deadLetterTopic must be a string, not a list",
    ),
    (V2 + "    default: /o\nscopes: [1, 2]\n", "scopes must be a list of strings"),
]


@pytest.mark.parametrize(("text", "message"), SUBSCRIPTION_ERRORS)
def test_subscription_errors_name_file_document_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "subs").mkdir()
    # the bad subscription is the second document, after a valid one
    good = V2.replace("name: sub", "name: good") + "    default: /good\n"
    (tmp_path / "subs" / "orders.yaml").write_text(good + "---\n" + text)
    with pytest.raises(ResourceError) as err:
        load_resources("subs", "app1")
    assert str(err.value) == f"subs/orders.yaml, document 2: {message}"
    assert err.value.file == "subs/orders.yaml" and err.value.document == 2
