"""Choosing a backend from a URL."""

from __future__ import annotations

import pytest

from tether.brokers import BrokerConfigError, MissingExtraError, open_broker
from tether.brokers.memory import MemoryBroker


def test_memory_url_gives_a_memory_broker() -> None:
    assert isinstance(open_broker("memory://"), MemoryBroker)


def test_named_memory_brokers_share_a_store() -> None:
    one, two = open_broker("memory://shared-x"), open_broker("memory://shared-x")
    assert isinstance(one, MemoryBroker) and isinstance(two, MemoryBroker)
    assert one.memory_store is two.memory_store
    assert open_broker("memory://").store is not one.store  # type: ignore[attr-defined]


def test_unknown_scheme_names_the_known_ones() -> None:
    with pytest.raises(BrokerConfigError, match=r"unknown broker URL scheme.*kafka://"):
        open_broker("amqp://localhost")


def test_missing_client_library_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "aiokafka", None)  # as if tether[kafka] were not installed
    for name in [m for m in sys.modules if m.startswith("tether.brokers.kafka")]:
        monkeypatch.delitem(sys.modules, name)  # the backend package and its submodules
    with pytest.raises(MissingExtraError, match=r"pip install 'tether\[kafka\]'"):
        open_broker("kafka://127.0.0.1:9092")
