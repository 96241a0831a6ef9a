"""The fuzz tests' live sidecar: one per state store backend and test module, with a canary
key saved before the fuzzing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.api.fuzzing import CANARY_VALUE, StateGuard
from tests.api.live import BACKENDS, STATE, LiveSidecar, components


@pytest.fixture(scope="module", params=BACKENDS)
def sidecar(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[LiveSidecar]:
    backend: str = request.param
    tmp: Path = tmp_path_factory.mktemp(f"fuzz-{backend}")
    live = LiveSidecar(backend, components(request, backend, tmp)).start()
    try:
        saved = requests.post(f"{live.url}/v1.0/state/{STATE}", timeout=30,
                              data=json.dumps([{"key": live.canary, "value": CANARY_VALUE}]))
        assert saved.status_code == 204, saved.text
        yield live
    finally:
        live.stop()


@pytest.fixture(scope="module")
def guard(sidecar: LiveSidecar) -> Iterator[StateGuard]:
    with requests.Session() as session:
        yield StateGuard(sidecar.url, session)


