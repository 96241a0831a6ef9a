"""state.* components → stores: metadata checks name the component and field, no I/O."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component, SecretKeyRef
from tether.platform.state.registry import (
    StateStoreConfigError,
    UnknownStateStoreError,
    open_state_store,
    state_store_spec,
)
from tether.platform.state.store import SetOperation
from tether.platform.state.stores.memory import MemoryStateStore


def component(type_: str, **metadata: str | SecretKeyRef) -> Component:
    return Component(name="orders", type=type_, metadata=metadata)


async def test_in_memory_opens_a_fresh_store_each_time() -> None:
    first = await open_state_store(component("state.in-memory"))
    second = await open_state_store(component("state.in-memory"))
    assert isinstance(first, MemoryStateStore)
    await first.set(SetOperation("k", b"v"))
    assert await second.get("k") is None
    await first.close()
    await second.close()


def test_unknown_type_is_refused_naming_the_component() -> None:
    with pytest.raises(UnknownStateStoreError, match=r"'orders'.*state\.mongodb"):
        state_store_spec(component("state.mongodb"))


@pytest.mark.parametrize(
    ("type_", "metadata", "field"),
    [
        ("state.redis", {}, "redisHost"),
        ("state.redis", {"redisHost": "localhost"}, "redisHost"),
        ("state.redis", {"redisHost": "localhost:6379", "redisDB": "x"}, "redisDB"),
        ("state.redis", {"redisHost": "localhost:6379", "enableTLS": "yes"}, "enableTLS"),
        ("state.redis", {"redisHost": "localhost:6379", "ttlInSeconds": "0"}, "ttlInSeconds"),
        ("state.redis", {"redisHost": "localhost:6379", "ttlInSeconds": "-5"}, "ttlInSeconds"),
        ("state.redis", {"redisHost": "localhost:6379", "ttlInSeconds": str(2**31)},
         "ttlInSeconds"),
        ("state.postgresql", {}, "connectionString"),
        ("state.postgresql", {"connectionString": "host=x", "tableName": "a;drop"}, "tableName"),
        ("state.postgresql", {"connectionString": "host=x", "timeout": "soon"}, "timeout"),
        ("state.postgresql", {"connectionString": "host=x", "metadataTableName": "a.b.c"},
         "metadataTableName"),
        ("state.sqlite", {"tableName": "state table"}, "tableName"),
        ("state.sqlite", {"connectionString": ":memory:"}, "connectionString"),
        ("state.sqlite", {"busyTimeout": "-1s"}, "busyTimeout"),
        ("state.redis", {"redisHost": SecretKeyRef("redis", "host")}, "redisHost"),
    ],
)
def test_bad_metadata_names_the_component_and_field(
    type_: str, metadata: dict[str, str | SecretKeyRef], field: str
) -> None:
    with pytest.raises(StateStoreConfigError, match=f"'orders'.*{field}") as caught:
        state_store_spec(component(type_, **metadata))
    assert isinstance(caught.value, BlockConfigError)  # the sidecar refuses to start


def test_good_metadata_is_accepted_without_connecting(tmp_path: Path) -> None:
    specs = [
        state_store_spec(component("state.redis", redisHost="nowhere.invalid:6379",
                                   redisDB="3", enableTLS="true", ttlInSeconds="60")),
        state_store_spec(component("state.postgresql", connectionString="host=nowhere.invalid",
                                   tableName="public.state", timeout="500ms")),
        state_store_spec(component("state.sqlite", connectionString="file:x.db?mode=rwc"),
                         tmp_path),
        state_store_spec(component("state.sqlite")),
    ]
    assert [s.type for s in specs] == [
        "state.redis", "state.postgresql", "state.sqlite", "state.sqlite"
    ]
