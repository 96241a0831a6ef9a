"""``choose_components``: the one function the runtime's discovery and the sidecar's
workflow API use to pick the pub/sub and the state store; and the runtime's discovery seeing
the components as the sidecar does (scopes applied, secretKeyRef values resolved)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component
from tether.platform.workflows.durable import RuntimeConfig
from tether.platform.workflows.durable.backend import choose_backend
from tether.platform.workflows.durable.config import (
    PUBSUB_ENV,
    ComponentChoiceError,
    choose_components,
    connect,
)
from tether.platform.workflows.durable.names import APP_ID_ENVS


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (PUBSUB_ENV, *APP_ID_ENVS):
        monkeypatch.delenv(name, raising=False)


def pubsub(name: str) -> Component:
    return Component(name=name, type="pubsub.tether.embedded", metadata={"path": f"{name}.db"})


def sqlite(name: str, actor: str | None = None) -> Component:
    meta = {"connectionString": f"{name}.db"}
    if actor is not None:
        meta["actorStateStore"] = actor
    return Component(name=name, type="state.sqlite", metadata=meta)


def test_the_choice() -> None:
    assert choose_components([]).pubsub is None and choose_components([]).state is None
    chosen = choose_components([pubsub("a"), pubsub("b"), sqlite("cache"),
                                sqlite("wf", "True"), sqlite("c", "false")])
    assert (chosen.pubsub and chosen.pubsub.name, chosen.state and chosen.state.name) == (
        "a", "wf")
    assert choose_components([sqlite("cache"), sqlite("other")]).state == sqlite("cache")


def test_two_actor_stores_are_refused_on_both_sides(tmp_path: Path) -> None:
    comps = [sqlite("a", "true"), sqlite("b", "true")]
    with pytest.raises(ComponentChoiceError, match="actorStateStore: 'a', 'b'"):
        choose_components(comps)
    with pytest.raises(BlockConfigError, match="actorStateStore"):
        choose_backend(comps)


def test_a_pubsub_env_naming_no_component_is_refused_on_both_sides(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PUBSUB_ENV, "second")
    chosen = choose_components([pubsub("first"), pubsub("second")])
    assert chosen.pubsub is not None and chosen.pubsub.name == "second"
    monkeypatch.setenv(PUBSUB_ENV, "missing")
    with pytest.raises(ComponentChoiceError, match="missing"):
        choose_components([pubsub("first")])
    with pytest.raises(BlockConfigError, match="missing"):
        choose_backend([pubsub("first")])


def _component(name: str, type_: str, metadata: str, scopes: str = "",
               auth: str = "") -> str:
    return (f"apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: {name}\n"
            f"spec:\n  type: {type_}\n  version: v1\n  metadata:\n{metadata}{auth}{scopes}"
            "---\n")


def _write(tmp_path: Path, text: str) -> str:
    res = tmp_path / "res"
    res.mkdir()
    (res / "components.yaml").write_text(text)
    return str(res)


async def test_discovery_applies_the_apps_scopes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    scoped_other = "scopes:\n  - someone-else\n"
    scoped_me = "scopes:\n  - greeter\n"
    text = (
        _component("theirs", "pubsub.tether.embedded",
                   "    - name: path\n      value: theirs-broker.db\n", scoped_other)
        + _component("mine", "pubsub.tether.embedded",
                     "    - name: path\n      value: mine-broker.db\n", scoped_me)
        + _component("their-wf", "state.sqlite",
                     "    - name: connectionString\n      value: theirs.db\n"
                     "    - name: actorStateStore\n      value: \"true\"\n", scoped_other)
        + _component("my-wf", "state.sqlite",
                     "    - name: connectionString\n      value: mine.db\n"
                     "    - name: actorStateStore\n      value: \"true\"\n", scoped_me))
    path = _write(tmp_path, text)
    # without scopes the two actor stores would be refused; the app sees only its own
    monkeypatch.setenv("TETHER_APP_ID", "greeter")
    conn = await connect(RuntimeConfig(resources_path=path))
    try:
        assert "mine-broker.db" in conn.broker.url
        await conn.store.get("x")
    finally:
        await conn.close()
    assert (tmp_path / "mine.db").exists() and not (tmp_path / "theirs.db").exists()


async def test_discovery_resolves_secret_refs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WF_TEST_STATE_PATH", str(tmp_path / "from-secret.db"))
    text = (
        _component("env", "secretstores.local.env", "    []\n")
        + _component("wf", "state.sqlite",
                     "    - name: connectionString\n      secretKeyRef:\n"
                     "        name: WF_TEST_STATE_PATH\n        key: WF_TEST_STATE_PATH\n",
                     auth="auth:\n  secretStore: env\n"))
    path = _write(tmp_path, text)
    conn = await connect(RuntimeConfig(resources_path=path, app_id="greeter",
                                       broker_url=f"embedded://{tmp_path}/b.db"))
    try:
        await conn.store.get("x")
    finally:
        await conn.close()
    assert (tmp_path / "from-secret.db").exists()


async def test_discovery_refuses_two_actor_stores(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    actor = "    - name: connectionString\n      value: {}.db\n" \
            "    - name: actorStateStore\n      value: \"true\"\n"
    path = _write(tmp_path, _component("a", "state.sqlite", actor.format("a"))
                  + _component("b", "state.sqlite", actor.format("b")))
    with pytest.raises(ComponentChoiceError, match="actorStateStore"):
        await connect(RuntimeConfig(resources_path=path, app_id="greeter"))
    monkeypatch.setenv(PUBSUB_ENV, "nope")
    with pytest.raises(ComponentChoiceError, match="nope"):
        await connect(RuntimeConfig(resources_path=path, app_id="greeter"))
