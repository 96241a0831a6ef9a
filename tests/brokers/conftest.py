"""Collects each backend's harness fixture (tests/brokers/harness_<name>.py)."""

from __future__ import annotations

import importlib

import pytest

from tests.brokers.harness import BACKENDS, Harness
from tests.servers import unavailable

for _name in BACKENDS:
    try:
        _module = importlib.import_module(f"tests.brokers.harness_{_name}")
    except ModuleNotFoundError as _exc:
        if _exc.name != f"tests.brokers.harness_{_name}":
            raise
        continue
    globals()[f"{_name}_harness"] = getattr(_module, f"{_name}_harness")


@pytest.fixture(params=BACKENDS)
def harness(request: pytest.FixtureRequest) -> Harness:
    name = request.param
    try:
        value: Harness = request.getfixturevalue(f"{name}_harness")
    except pytest.FixtureLookupError:
        unavailable(f"no harness for the {name} backend (tests/brokers/harness_{name}.py)")
        raise
    return value
