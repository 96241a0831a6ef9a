"""How the sidecar's workflow block picks its pub/sub and state store (api_config), and
that a bad choice stops the sidecar at startup."""

from __future__ import annotations

import pytest

from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component
from tether.platform.workflows.durable.backend import choose_backend
from tether.platform.workflows.durable.config import PUBSUB_ENV


def pubsub(name: str) -> Component:
    return Component(name=name, type="pubsub.tether.embedded", metadata={"path": f"{name}.db"})


def sqlite(name: str, actor: str | None = None) -> Component:
    meta = {"connectionString": f"{name}.db"}
    if actor is not None:
        meta["actorStateStore"] = actor
    return Component(name=name, type="state.sqlite", metadata=meta)


def test_defaults_without_components(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PUBSUB_ENV, raising=False)
    chosen = choose_backend([])
    assert chosen.pubsub is None
    assert chosen.state.type == "state.sqlite"
    assert chosen.state.value("connectionString") == ".tether/workflows.db"


def test_actor_state_store_wins_else_the_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PUBSUB_ENV, raising=False)
    comps = [sqlite("cache"), pubsub("first"), pubsub("second"), sqlite("actors", "True")]
    chosen = choose_backend(comps)
    assert chosen.pubsub is not None and chosen.pubsub.name == "first"
    assert chosen.state.name == "actors"
    assert choose_backend([sqlite("cache"), sqlite("other", "false")]).state.name == "cache"


def test_pubsub_named_by_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PUBSUB_ENV, "second")
    chosen = choose_backend([pubsub("first"), pubsub("second")])
    assert chosen.pubsub is not None and chosen.pubsub.name == "second"
    monkeypatch.setenv(PUBSUB_ENV, "missing")
    with pytest.raises(BlockConfigError, match="missing"):
        choose_backend([pubsub("first")])


def test_bad_choices_stop_the_sidecar(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PUBSUB_ENV, raising=False)
    with pytest.raises(BlockConfigError, match="actorStateStore"):
        choose_backend([sqlite("a", "true"), sqlite("b", "true")])
    broken = Component(name="broken", type="state.redis", metadata={"actorStateStore": "true"})
    with pytest.raises(BlockConfigError, match="broken"):
        choose_backend([broken])
