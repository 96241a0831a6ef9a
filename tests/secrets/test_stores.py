"""The local secret stores, with the examples of Dapr's component docs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tether.platform.components import Component, SecretKeyRef
from tether.platform.secrets import SecretStores, build_store
from tether.platform.secrets.stores import (
    LocalEnvStore,
    LocalFileStore,
    SecretNotFoundError,
    SecretStoreConfigError,
)
from tether.platform.secrets.stores.local_file import parse_secrets

# Dapr's local file store docs: a nested secrets file
NESTED = {"redisPassword": "your redis password", "connectionStrings": {
    "sql": "your sql connection string", "mysql": "your mysql connection string"}}


def file_store(tmp_path: Path, content: object, **metadata: str) -> LocalFileStore:
    path = tmp_path / "secrets.json"
    path.write_text(json.dumps(content))
    component = Component(
        name="local", type="secretstores.local.file",
        metadata={"secretsFile": str(path), **metadata},
    )
    store = build_store(component)
    assert isinstance(store, LocalFileStore)
    return store


async def test_nested_keys_are_flattened_with_the_default_separator(tmp_path: Path) -> None:
    store = file_store(tmp_path, NESTED)
    assert await store.get("redisPassword", {}) == {"redisPassword": "your redis password"}
    assert await store.get("connectionStrings:sql", {}) == {
        "connectionStrings:sql": "your sql connection string"
    }
    with pytest.raises(SecretNotFoundError):
        await store.get("connectionStrings", {})
    assert set(await store.bulk({})) == {
        "redisPassword", "connectionStrings:sql", "connectionStrings:mysql"
    }


async def test_a_custom_separator(tmp_path: Path) -> None:
    store = file_store(tmp_path, NESTED, nestedSeparator=".")
    assert await store.get("connectionStrings.mysql", {}) == {
        "connectionStrings.mysql": "your mysql connection string"
    }


async def test_multi_valued_returns_nested_keys_as_one_secret(tmp_path: Path) -> None:
    store = file_store(tmp_path, NESTED, multiValued="true")
    assert await store.get("connectionStrings", {}) == {
        "sql": "your sql connection string", "mysql": "your mysql connection string"
    }
    assert await store.get("redisPassword", {}) == {"redisPassword": "your redis password"}
    assert await store.bulk({}) == {
        "redisPassword": {"redisPassword": "your redis password"},
        "connectionStrings": {
            "sql": "your sql connection string", "mysql": "your mysql connection string"
        },
    }


def test_deeper_levels_arrays_and_scalars() -> None:
    doc = {"a": {"b": {"c": "x"}, "list": ["p", 2]}, "n": 1.5, "t": True, "z": None}
    assert parse_secrets(doc, ":", multi_valued=False) == {
        "a:b:c": {"a:b:c": "x"},
        "a:list:0": {"a:list:0": "p"},
        "a:list:1": {"a:list:1": "2"},
        "n": {"n": "1.5"},
        "t": {"t": "true"},
        "z": {"z": ""},
    }
    assert parse_secrets(doc, ":", multi_valued=True)["a"] == {
        "b:c": "x", "list:0": "p", "list:1": "2"
    }


def test_names_that_collide_once_flattened_are_refused() -> None:
    with pytest.raises(ValueError, match="'a:b' occurs twice"):
        parse_secrets({"a:b": "1", "a": {"b": "2"}}, ":", multi_valued=False)


def test_bad_files_stop_the_store_with_the_component_named(tmp_path: Path) -> None:
    missing = Component(name="local", type="secretstores.local.file",
                        metadata={"secretsFile": str(tmp_path / "nope.json")})
    with pytest.raises(SecretStoreConfigError, match=r"'local'.*cannot be read"):
        build_store(missing)
    (tmp_path / "bad.json").write_text('{"password": "hunter2",')
    bad = Component(name="local", type="secretstores.local.file",
                    metadata={"secretsFile": str(tmp_path / "bad.json")})
    with pytest.raises(SecretStoreConfigError, match="not valid JSON") as info:
        build_store(bad)
    assert "hunter2" not in str(info.value)
    with pytest.raises(SecretStoreConfigError, match="secretsFile is required"):
        build_store(Component(name="local", type="secretstores.local.file"))
    with pytest.raises(SecretStoreConfigError, match="multiValued must be true or false"):
        file_store(tmp_path, {}, multiValued="maybe")
    with pytest.raises(SecretStoreConfigError, match="must be a plain value"):
        build_store(Component(name="local", type="secretstores.local.file",
                              metadata={"secretsFile": SecretKeyRef("f", "f")}))


def test_relative_paths_are_taken_from_the_base_dir(tmp_path: Path) -> None:
    (tmp_path / "s.json").write_text('{"k": "v"}')
    component = Component(name="local", type="secretstores.local.file",
                          metadata={"secretsFile": "s.json"})
    assert isinstance(build_store(component, base_dir=tmp_path), LocalFileStore)


def test_values_are_masked_in_reprs(tmp_path: Path) -> None:
    store = file_store(tmp_path, {"password": "hunter2"})
    assert "hunter2" not in repr(store._secrets)


async def test_env_store_reads_variables_and_withholds_the_runtime_ones() -> None:
    environ = {"DB_PASS": "pw", "DAPR_API_TOKEN": "t", "APP_API_TOKEN": "t2",
               "TETHER_APP_ID": "a", "EMPTY": ""}
    store = LocalEnvStore("env", environ=environ)
    assert await store.get("DB_PASS", {}) == {"DB_PASS": "pw"}
    assert await store.get("EMPTY", {}) == {"EMPTY": ""}
    for name in ("DAPR_API_TOKEN", "APP_API_TOKEN", "TETHER_APP_ID", "UNSET"):
        with pytest.raises(SecretNotFoundError):
            await store.get(name, {})
    assert await store.bulk({}) == {"DB_PASS": {"DB_PASS": "pw"}, "EMPTY": {"EMPTY": ""}}


async def test_env_store_prefix_as_dapr() -> None:
    # Dapr's example: prefix MYAPP_, Get FOO reads MYAPP_FOO and answers as FOO
    environ = {"MYAPP_FOO": "1", "MYAPP_BAR": "2", "FOO": "other", "MYAPP_DAPR_X": "3"}
    store = LocalEnvStore("env", prefix="MYAPP_", environ=environ)
    assert await store.get("FOO", {}) == {"FOO": "1"}
    assert await store.bulk({}) == {
        "FOO": {"FOO": "1"}, "BAR": {"BAR": "2"}, "DAPR_X": {"DAPR_X": "3"}
    }
    with pytest.raises(SecretNotFoundError):
        await store.get("MYAPP_FOO", {})


def test_env_store_from_component_reads_the_prefix() -> None:
    store = build_store(Component(name="env", type="secretstores.local.env",
                                  metadata={"prefix": "MYAPP_"}))
    assert isinstance(store, LocalEnvStore) and store.prefix == "MYAPP_"


def test_registry_builds_only_secret_stores_and_refuses_unknown_types(tmp_path: Path) -> None:
    stores = SecretStores.from_components([
        Component(name="env", type="secretstores.local.env"),
        Component(name="pubsub", type="pubsub.in-memory"),
    ])
    assert list(stores) == ["env"]
    with pytest.raises(SecretStoreConfigError, match=r"'secretstores\.hashicorp\.vault' is not"):
        SecretStores.from_components([Component(name="v", type="secretstores.hashicorp.vault")])
