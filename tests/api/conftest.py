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


#: what the fuzzer finds that other branches of issue 10 fix, by test name (in
#: test_fuzz.py and test_fuzz_soak.py): until they are merged these tests are
#: xfail(strict=False); remove the entries with the fixes.
_HUGE_TTL = (
    # POST /v1.0/state/statestore?metadata.ttlInSeconds=80376979590902 with any items:
    # SQLite, in-memory and Redis save them, after which reading them (GET, bulk, query) is
    # a plain-text 500; PostgreSQL answers 500 ERR_STATE_SAVE "timestamp out of range"
    "a huge ttlInSeconds (issue 10)")
_LIST_TOKEN = (
    # GET /v1.0-alpha1/workflows/tether/instances?continuationToken=E%7D... is 500
    # ERR_LIST_WORKFLOWS "page.token ... is not a token this store returned" (400 is right)
    "a garbage continuationToken (issue 10)")
KNOWN_FINDINGS = {
    **{f"{test}[{backend}]": _HUGE_TTL
       for backend in BACKENDS for test in ("test_links", "test_store_reads_back")
       if (test, backend) != ("test_store_reads_back", "postgresql")},
    **{f"test_every_operation[GET /v1.0-alpha1/workflows/tether/instances][{backend}]":
       _LIST_TOKEN for backend in BACKENDS},
}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        reason = KNOWN_FINDINGS.get(item.name)
        if reason is not None and item.nodeid.startswith("tests/api/test_fuzz"):
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
