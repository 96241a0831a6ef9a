"""Loading Dapr Component resources: sample files, template tags, secrets, scopes, errors."""

from __future__ import annotations

import logging
import re
import uuid
from pathlib import Path

import pytest

from tether.platform.components import (
    Component,
    ResourceError,
    Resources,
    SecretKeyRef,
    Templates,
    TopicScopes,
    default_components,
    load_resources,
)

RESOURCES = Path(__file__).parent / "resources"
SAMPLES = RESOURCES / "dapr"
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}"


@pytest.fixture
def loaded() -> Resources:
    return load_resources(SAMPLES, "app1", namespace="prod", pod_name="pod-7")


def by_name(resources: Resources, name: str) -> Component:
    (found,) = [c for c in resources.components if c.name == name]
    return found


# --- the sample files ---------------------------------------------------------------------


def test_every_component_of_the_samples_is_loaded_in_file_order(loaded: Resources) -> None:
    assert [c.name for c in loaded.components] == [
        "pubsub",  # inmemory.yml
        "kafka-pubsub",
        "statestore",  # platform.yaml, two components then other kinds
        "localsecretstore",
        "order-pub-sub",  # redis.yaml
        "servicebus-pubsub",
    ]
    assert [c.type for c in loaded.components] == [
        "pubsub.in-memory",
        "pubsub.kafka",
        "state.redis",
        "secretstores.local.file",
        "pubsub.redis",
        "pubsub.azure.servicebus.topics",
    ]


def test_kafka_component_fields(loaded: Resources) -> None:
    kafka = by_name(loaded, "kafka-pubsub")
    assert kafka.namespace == "default"
    assert kafka.version == "v1"
    assert kafka.block == "pubsub"
    assert kafka.init_timeout == 90.0
    assert kafka.ignore_errors is False
    assert kafka.secret_store == "localsecretstore"
    assert kafka.value("brokers") == "dapr-kafka.myapp.svc.cluster.local:9092"
    # YAML scalars reach components as the strings Dapr would pass
    assert kafka.value("maxMessageBytes") == "1024"
    assert kafka.value("disableTls") == "true"
    assert kafka.value("version") == "2.0.0"
    assert kafka.value("consumeRetryInterval") == "200ms"
    assert kafka.source is not None and kafka.source.document == 1
    assert kafka.source.file.endswith("kafka.yaml")


def test_redis_and_inmemory_fields(loaded: Resources) -> None:
    redis = by_name(loaded, "order-pub-sub")
    assert redis.ignore_errors is True
    assert redis.init_timeout == 5.0  # Dapr's default
    assert redis.value("redisPassword") == ""
    assert redis.value("enableTLS") == "false"
    assert redis.secret_store is None
    memory = by_name(loaded, "pubsub")
    assert dict(memory.metadata) == {}
    assert memory.scopes == ()


def test_secret_key_refs_stay_unresolved(loaded: Resources) -> None:
    kafka = by_name(loaded, "kafka-pubsub")
    assert kafka.metadata["saslPassword"] == SecretKeyRef("kafka-secrets", "saslPasswordSecret")
    assert kafka.value("saslPassword") is None
    assert kafka.secret_refs() == {
        "saslPassword": SecretKeyRef("kafka-secrets", "saslPasswordSecret")
    }
    # without a key, Dapr looks the secret name up as the key
    state = by_name(loaded, "statestore")
    assert state.metadata["redisPassword"] == SecretKeyRef("redis-password", "redis-password")


def test_other_kinds_are_collected_not_loaded(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG, logger="tether.platform.components"):
        resources = load_resources(SAMPLES, "app1")
    assert [(o.kind, o.name, o.source.document) for o in resources.others] == [
        ("Configuration", "appconfig", 3),
        ("Resiliency", "myresiliency", 4),
    ]
    assert resources.others[0].api_version == "dapr.io/v1alpha1"
    assert "Configuration 'appconfig' is not loaded yet" in caplog.text


def test_non_yaml_files_are_skipped(tmp_path: Path) -> None:
    (tmp_path / "secrets.json").write_text('{"not": "a resource"}')
    (tmp_path / "notes.md").write_text("# kind: Component")
    (tmp_path / "pubsub.YML").write_text(_component("pubsub", "pubsub.kafka"))
    nested = tmp_path / "nested"
    nested.mkdir()
    (nested / "other.yaml").write_text(_component("other", "pubsub.kafka"))
    resources = load_resources(tmp_path, "app1")
    assert [c.name for c in resources.components] == ["pubsub"]  # sub-folders are not read


def test_several_folders_and_single_files() -> None:
    resources = load_resources([SAMPLES, RESOURCES / "subscriptions"], "app1")
    assert len(resources.components) == 6
    assert len(resources.subscriptions) == 3
    single = load_resources(SAMPLES / "inmemory.yml", "app1")
    assert [c.name for c in single.components] == ["pubsub"]


def test_loading_the_same_file_twice_is_a_duplicate() -> None:
    with pytest.raises(ResourceError) as err:
        load_resources([SAMPLES / "inmemory.yml", SAMPLES / "inmemory.yml"], "app1")
    assert str(err.value).endswith(
        "inmemory.yml, document 1: metadata.name 'pubsub' is already defined in "
        f"{SAMPLES / 'inmemory.yml'}, document 1"
    )


# --- template tags ------------------------------------------------------------------------


def test_template_tags_are_resolved_for_the_app(loaded: Resources) -> None:
    kafka = by_name(loaded, "kafka-pubsub")
    assert kafka.value("consumerGroup") == "prod.app1"  # Dapr: {namespace} is <namespace>.<appID>
    assert re.fullmatch(rf"app1-{UUID}", kafka.value("clientID") or "")
    assert by_name(loaded, "order-pub-sub").value("consumerID") == "app1-pod-7"


def test_each_uuid_occurrence_is_a_new_uuid() -> None:
    templates = Templates("checkout", "default", "host")
    first, second = templates.render("{uuid}/{uuid}").split("/")
    assert re.fullmatch(UUID, first) and re.fullmatch(UUID, second)
    assert first != second
    assert templates.render("{uuid}") != templates.render("{uuid}")


def test_template_defaults_and_untouched_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    templates = Templates("checkout")
    assert templates.render("{appID}.{namespace}") == "checkout.default.checkout"
    assert templates.render("{unknown} {appid} {") == "{unknown} {appid} {"
    monkeypatch.setenv("NAMESPACE", "staging")
    (tmp_path / "c.yaml").write_text(
        _component("c", "pubsub.kafka", "  - name: group\n    value: '{namespace}-{podName}'\n")
    )
    component = load_resources(tmp_path, "orders", pod_name="p1").components[0]
    assert component.value("group") == "staging.orders-p1"


def test_the_same_file_renders_per_app() -> None:
    first = by_name(load_resources(SAMPLES, "app1"), "kafka-pubsub")
    second = by_name(load_resources(SAMPLES, "app2"), "kafka-pubsub")
    assert first.value("consumerGroup") == "default.app1"
    assert second.value("consumerGroup") == "default.app2"


# --- scopes -------------------------------------------------------------------------------


def test_component_scopes(loaded: Resources) -> None:
    state = by_name(loaded, "statestore")
    assert state.scopes == ("checkout",)
    assert state.visible_to("checkout") and not state.visible_to("app1")
    memory = by_name(loaded, "pubsub")
    assert memory.visible_to("anything")  # no scopes: every app
    assert "statestore" not in [c.name for c in loaded.components_for("app1")]
    assert loaded.component("statestore", "checkout") is state
    assert loaded.component("statestore", "app1") is None


def test_same_name_with_disjoint_scopes_is_allowed(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(_component("pubsub", "pubsub.kafka", scopes=["orders"]))
    (tmp_path / "b.yaml").write_text(_component("pubsub", "pubsub.redis", scopes=["billing"]))
    resources = load_resources(tmp_path, "orders")
    assert resources.component("pubsub", "orders").type == "pubsub.kafka"  # type: ignore[union-attr]
    assert resources.component("pubsub", "billing").type == "pubsub.redis"  # type: ignore[union-attr]
    assert resources.component("pubsub", "other") is None


# --- pub/sub topic scoping (the tables of Dapr's pubsub-scopes page) -----------------------


def _table(scopes: TopicScopes, apps: list[str], topics: list[str], publish: bool) -> list[str]:
    check = scopes.can_publish if publish else scopes.can_subscribe
    return ["".join("X" if check(app, topic) else "." for topic in topics) for app in apps]


def test_scopes_example_1_publishing_and_subscription(loaded: Resources) -> None:
    scopes = by_name(loaded, "kafka-pubsub").topic_scopes
    assert scopes is not None
    apps, topics = ["app1", "app2", "app3"], ["topic1", "topic2", "topic3"]
    assert _table(scopes, apps, topics, publish=True) == ["X..", ".XX", "..."]
    assert _table(scopes, apps, topics, publish=False) == ["XXX", "...", "X.."]
    assert scopes.can_subscribe("app1", "unlisted-topic")  # not listed and no allowedTopics


def test_scopes_example_3_allowed_topics(loaded: Resources) -> None:
    scopes = by_name(loaded, "order-pub-sub").topic_scopes
    assert scopes is not None
    assert scopes.allowed_topics == frozenset({"A", "B"})
    apps, topics = ["app1", "app2", "app3"], ["A", "B", "C"]
    assert _table(scopes, apps, topics, publish=True) == ["X..", "XX.", "XX."]
    assert _table(scopes, apps, topics, publish=False) == ["...", "X..", "XX."]


def test_scopes_example_4_protected_topics(loaded: Resources) -> None:
    scopes = by_name(loaded, "servicebus-pubsub").topic_scopes
    assert scopes is not None
    apps, topics = ["app1", "app2", "app3"], ["A", "B", "C"]
    assert _table(scopes, apps, topics, publish=True) == ["XX.", ".X.", "..X"]
    assert _table(scopes, apps, topics, publish=False) == ["XX.", ".X.", "..X"]


def test_no_scoping_metadata_allows_everything(loaded: Resources) -> None:
    scopes = by_name(loaded, "pubsub").topic_scopes
    assert scopes == TopicScopes()
    assert scopes.can_publish("any", "topic") and scopes.can_subscribe("any", "topic")
    # only pub/sub components get a topic view
    assert by_name(loaded, "statestore").topic_scopes is None


def test_topic_scope_parsing_follows_dapr() -> None:
    scopes = TopicScopes.from_metadata(
        {
            "PUBLISHINGSCOPES": " app1 = a , b ; app1=c;app2=;",  # any case, spaces dropped
            "allowedtopics": "",  # empty means unset
        }
    )
    assert scopes.publishing == {"app1": frozenset({"a", "b", "c"}), "app2": frozenset()}
    assert scopes.allowed_topics is None
    assert scopes.can_publish("app1", "c") and not scopes.can_publish("app2", "a")


# --- defaults -----------------------------------------------------------------------------


def test_default_components_are_the_embedded_broker() -> None:
    (pubsub,) = default_components("checkout")
    assert pubsub.name == "pubsub"
    assert pubsub.type == "pubsub.tether.embedded"
    assert dict(pubsub.metadata) == {"path": ".tether/broker.db"}
    assert pubsub.visible_to("checkout") and pubsub.topic_scopes == TopicScopes()


@pytest.mark.parametrize("paths", [None, []])
def test_no_resources_path_gives_the_defaults(paths: list[Path] | None) -> None:
    resources = load_resources(paths, "checkout")
    assert resources.components == default_components("checkout")
    assert resources.subscriptions == () and resources.others == ()


# --- errors -------------------------------------------------------------------------------


def _component(name: str, type_: str, metadata: str = "", scopes: list[str] | None = None) -> str:
    text = (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\n"
        f"metadata:\n  name: {name}\nspec:\n  type: {type_}\n  version: v1\n"
    )
    if metadata:
        text += "  metadata:\n" + metadata
    if scopes:
        text += "scopes: [" + ", ".join(scopes) + "]\n"
    return text


def _error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *files: tuple[str, str]) -> str:
    """Load components/<name> files from tmp_path and return the error message."""
    monkeypatch.chdir(tmp_path)
    folder = tmp_path / "components"
    folder.mkdir()
    for name, text in files:
        (folder / name).write_text(text)
    with pytest.raises(ResourceError) as err:
        load_resources("components", "app1")
    return str(err.value)


GOOD = _component("pubsub", "pubsub.kafka")

COMPONENT_ERRORS = [
    (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n"
        "  version: v1\n",
        "document 1: spec.type is required",
    ),
    (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\n",
        "document 1: spec.type is required",
    ),
    (
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nspec:\n  type: pubsub.kafka\n",
        "document 1: metadata.name is required",
    ),
    (GOOD.replace("name: pubsub", "name: ''"), "document 1: metadata.name is required"),
    (
        GOOD.replace("name: pubsub", "name: a/b"),
        "document 1: metadata.name 'a/b' is not a valid name (no '/', '%', '.' or '..')",
    ),
    (
        GOOD.replace("dapr.io/v1alpha1", "dapr.io/v2alpha1"),
        "document 1: apiVersion 'dapr.io/v2alpha1' is not supported for Component; "
        "use dapr.io/v1alpha1",
    ),
    (GOOD.replace("kind: Component\n", ""), "document 1: kind is required"),
    (
        GOOD.replace("type: pubsub.kafka", "type: 3"),
        "document 1: spec.type must be a string, not 3",
    ),
    (
        GOOD + "---\n- just\n- a list\n",
        "document 2: the document is not a mapping of apiVersion, kind, metadata, spec",
    ),
    (
        GOOD.replace("spec:\n", "spec: []\n").split("  type")[0],
        "document 1: spec must be a mapping, not a list",
    ),
    (
        GOOD + "  initTimeout: 5 seconds\n",
        "document 1: spec.initTimeout '5 seconds' is not a duration like 5s, 1m30s or 500ms",
    ),
    (
        GOOD + "  ignoreErrors: maybe\n",
        "document 1: spec.ignoreErrors must be true or false, not 'maybe'",
    ),
    (GOOD + "scopes: app1\n", "document 1: scopes must be a list of strings"),
    (
        GOOD + "  metadata: {brokers: x}\n",
        "document 1: spec.metadata must be a list, not a mapping",
    ),
    (GOOD + "  metadata:\n  - value: x\n", "document 1: spec.metadata[0].name is required"),
    (GOOD + "  metadata:\n  - x\n", "document 1: spec.metadata[0] must be a mapping, not 'x'"),
    (
        GOOD + "  metadata:\n  - {name: a, value: x}\n  - {name: a, value: y}\n",
        "document 1: spec.metadata[1].name 'a' is repeated",
    ),
    (
        GOOD + "  metadata:\n  - name: pw\n    value: x\n    secretKeyRef: {name: s, key: k}\n",
        "document 1: spec.metadata[0] has both value and secretKeyRef; keep one",
    ),
    (
        GOOD + "  metadata:\n  - name: pw\n    secretKeyRef: {key: k}\n",
        "document 1: spec.metadata[0].secretKeyRef.name is required",
    ),
    (
        GOOD + "  metadata:\n  - name: pw\n    envRef: PASSWORD\n",
        "document 1: spec.metadata[0].envRef is not supported yet; use value or secretKeyRef",
    ),
    (
        GOOD + "  metadata:\n  - name: publishingScopes\n    value: app1=t1;app2\n",
        "document 1: spec.metadata.publishingScopes entry 'app2' is not app=topic1,topic2",
    ),
    (
        GOOD + "  metadata:\n  - name: subscriptionScopes\n    secretKeyRef: {name: s}\n",
        "document 1: spec.metadata.subscriptionScopes must be a plain value, not a secretKeyRef",
    ),
    (
        "kind: Component\nmetadata: {name: [unclosed\n",
        "document 1: invalid YAML (line 3): expected ',' or ']', but got '<stream end>'",
    ),
    (
        GOOD + "---\nkind: Component\n  bad: indent\n",
        "document 2: invalid YAML (line 10): mapping values are not allowed here",
    ),
]


@pytest.mark.parametrize(("text", "message"), COMPONENT_ERRORS)
def test_component_errors_name_file_document_and_field(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, message: str
) -> None:
    assert _error(tmp_path, monkeypatch, ("pubsub.yaml", text)).startswith(
        f"components/pubsub.yaml, {message}"
    )


def test_duplicate_component_names_are_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = _error(
        tmp_path,
        monkeypatch,
        ("a.yaml", _component("pubsub", "pubsub.kafka", scopes=["app1", "app2"])),
        (
            "b.yaml",
            _component("other", "state.redis")
            + "---\n"
            + _component("pubsub", "pubsub.redis", scopes=["app2"]),
        ),
    )
    assert message == (
        "components/b.yaml, document 2: metadata.name 'pubsub' is already defined in "
        "components/a.yaml, document 1"
    )


def test_unscoped_duplicate_clashes_with_a_scoped_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    message = _error(
        tmp_path,
        monkeypatch,
        ("a.yaml", _component("pubsub", "pubsub.kafka", scopes=["app1"])),
        ("b.yaml", _component("pubsub", "pubsub.redis")),
    )
    assert "components/b.yaml, document 1: metadata.name 'pubsub' is already defined" in message


def test_unknown_type_is_kept_not_refused(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(_component("weird", "pubsub.nobody-built-this"))
    (component,) = load_resources(tmp_path, "app1").components
    assert component.type == "pubsub.nobody-built-this"


def test_missing_resources_path_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ResourceError) as err:
        load_resources(tmp_path / "nope", "app1")
    assert (
        str(err.value) == f"{tmp_path / 'nope'}: resources path does not exist or is not a folder"
    )


def test_durations_and_structured_values(tmp_path: Path) -> None:
    (tmp_path / "x.yaml").write_text(
        _component(
            "x",
            "bindings.cron",
            "  - name: schedule\n    value: '@every 15s'\n"
            "  - name: limits\n    value: {max: 3, names: [a, b]}\n"
            "  - name: ratio\n    value: 2.0\n"
            "  - name: empty\n",
        )
        + "  initTimeout: 1h2m0.5s\n"
    )
    (component,) = load_resources(tmp_path, "app1").components
    assert component.init_timeout == pytest.approx(3720.5)
    assert component.value("schedule") == "@every 15s"
    assert component.value("limits") == '{"max":3,"names":["a","b"]}'
    assert component.value("ratio") == "2"
    assert component.value("empty") == ""


def test_yaml_documents_are_numbered_from_one_and_empty_ones_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "---\n" + GOOD + "---\n---\n" + GOOD.replace("name: pubsub", "name: two") + "---\n"
    (tmp_path / "multi.yaml").write_text(text)
    components = load_resources(tmp_path, "app1").components
    assert [(c.name, c.source.document) for c in components if c.source] == [
        ("pubsub", 1),
        ("two", 3),
    ]


def test_uuid_module_is_what_dapr_uses() -> None:
    # Dapr uses uuid.New().String(): a random (version 4) UUID in canonical text form
    value = Templates("a").render("{uuid}")
    assert uuid.UUID(value).version == 4


@pytest.mark.parametrize("value", ["²", "٣"])
def test_numbers_in_metadata_are_ascii_digits(value: str) -> None:
    # str.isdigit() took "²" (then int() crashed) and "٣" (read as 3)
    from tether.platform.components import metadata

    component = Component(name="c", type="state.redis", metadata={
        "redisHost": "h:1", "redisDB": value, "n": value, "d": f"1{value}s"})
    with pytest.raises(metadata.MetadataError, match="redisDB"):
        metadata.RedisSettings.from_component(component)
    with pytest.raises(metadata.MetadataError, match="whole number"):
        metadata.integer(component, "n", minimum=0)
    with pytest.raises(metadata.MetadataError, match="duration"):
        metadata.duration(component, "d", 1.0)
