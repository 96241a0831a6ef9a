"""secretKeyRef values resolved from the app's secret stores before anything reads them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.platform.components import Component, SecretKeyRef, Templates, load_documents
from tether.platform.pubsub import PubSubRegistry
from tether.platform.secrets import SecretRefError, resolve_app_secrets
from tether.platform.secrets.stores import SecretStoreConfigError

SECRETS = {"redis": {"password": "p@ss/word", "user": "app"}, "plain": "x"}


def components(tmp_path: Path, yaml_text: str) -> list[Component]:
    items = load_documents(yaml_text, "components.yaml", Templates("app"))
    return [c for c in items if isinstance(c, Component)]


def file_store_yaml(tmp_path: Path, name: str = "local", multi: bool = True) -> str:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(SECRETS))
    return f"""
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: {name}}}
spec:
  type: secretstores.local.file
  metadata:
    - {{name: secretsFile, value: "{path}"}}
    - {{name: multiValued, value: "{str(multi).lower()}"}}
---
"""


REDIS = """
apiVersion: dapr.io/v1alpha1
kind: Component
metadata: {{name: pubsub}}
{auth}
spec:
  type: pubsub.redis
  metadata:
    - {{name: redisHost, value: "localhost:6379"}}
    - {{name: redisPassword, secretKeyRef: {{name: {name}, key: {key}}}}}
"""


async def test_refs_become_plain_strings_the_pubsub_registry_accepts(tmp_path: Path) -> None:
    text = file_store_yaml(tmp_path) + REDIS.format(auth="auth: {secretStore: local}",
                                                    name="redis", key="password")
    resolved = await resolve_app_secrets(components(tmp_path, text))
    pubsub = next(c for c in resolved if c.name == "pubsub")
    assert pubsub.value("redisPassword") == "p@ss/word"
    assert not pubsub.secret_refs()
    assert "p@ss/word" not in repr(pubsub)  # a stray repr in a log shows a mask
    spec = PubSubRegistry(resolved).spec("pubsub")
    assert spec is not None and spec.url == "redis://:p%40ss%2Fword@localhost:6379/0"


async def test_the_only_store_is_the_default_and_the_key_defaults_to_the_name(
    tmp_path: Path,
) -> None:
    text = file_store_yaml(tmp_path, multi=False) + REDIS.format(
        auth="", name="plain", key="plain")
    resolved = await resolve_app_secrets(components(tmp_path, text))
    assert resolved[1].value("redisPassword") == "x"


async def test_components_without_refs_are_left_as_they_are(tmp_path: Path) -> None:
    plain = Component(name="p", type="pubsub.in-memory", metadata={"a": "b"})
    assert await resolve_app_secrets([plain]) == (plain,)


@pytest.mark.parametrize(("auth", "name", "key", "problem"), [
    ("auth: {secretStore: vault}", "redis", "password",
     "component 'pubsub' .*auth.secretStore 'vault' is not a secret store of this app "
     r"\(secret stores: local\)"),
    ("", "missing", "password",
     "component 'pubsub' .*metadata redisPassword: secretKeyRef 'missing': "
     "secret store 'local' has no secret 'missing'"),
    ("", "redis", "pwd",
     "metadata redisPassword: .*secret 'redis' in secret store 'local' has no key 'pwd'"),
])
async def test_unresolvable_refs_name_component_field_store_and_secret(
    tmp_path: Path, auth: str, name: str, key: str, problem: str
) -> None:
    text = file_store_yaml(tmp_path) + REDIS.format(auth=auth, name=name, key=key)
    with pytest.raises(SecretRefError, match=problem) as info:
        await resolve_app_secrets(components(tmp_path, text))
    assert "components.yaml, document 2" in str(info.value)
    assert "p@ss" not in str(info.value)


async def test_no_store_or_several_stores_without_auth_is_an_error(tmp_path: Path) -> None:
    redis = REDIS.format(auth="", name="redis", key="password")
    with pytest.raises(SecretRefError, match="the app has no secret store component"):
        await resolve_app_secrets(components(tmp_path, redis))
    two = file_store_yaml(tmp_path, "a") + file_store_yaml(tmp_path, "b") + redis
    with pytest.raises(SecretRefError, match=r"several secret stores \(a, b\): set auth"):
        await resolve_app_secrets(components(tmp_path, two))
    two_with_auth = two.replace(
        "metadata: {name: pubsub}", "metadata: {name: pubsub}\nauth: {secretStore: b}"
    )
    resolved = await resolve_app_secrets(components(tmp_path, two_with_auth))
    assert resolved[2].value("redisPassword") == "p@ss/word"


async def test_a_secret_store_cannot_take_refs_itself(tmp_path: Path) -> None:
    env_store = Component(name="env", type="secretstores.local.env",
                          metadata={"prefix": "A_", "other": SecretKeyRef("x", "x")})
    with pytest.raises(SecretRefError, match="a secret store cannot take its own metadata"):
        await resolve_app_secrets([env_store])
    broken = Component(name="f", type="secretstores.local.file", metadata={})
    with pytest.raises(SecretStoreConfigError):
        await resolve_app_secrets([broken])
