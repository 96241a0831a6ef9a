"""The fuzzing of test_fuzz.py with many more cases and another seed, for a soak run by
hand: ``TETHER_TEST_FUZZ_SOAK=200 .venv/bin/pytest -m slow tests/api/test_fuzz_soak.py``
(the fuzzing phase's cases per operation; unset, the module is skipped)."""

from __future__ import annotations

import os
from typing import Any

import pytest
from schemathesis import Case

from tests.api.fuzzing import (
    StateGuard,
    call_and_check,
    check_store_reads_back,
    fuzz_schema,
    run_links,
)
from tests.api.live import LiveSidecar

EXAMPLES = int(os.environ.get("TETHER_TEST_FUZZ_SOAK") or 0)
pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(0),
    pytest.mark.skipif(not EXAMPLES, reason="set TETHER_TEST_FUZZ_SOAK to soak"),
]

schema = fuzz_schema(max_examples=max(EXAMPLES, 1), seed=20)


@schema.parametrize()
def test_every_operation(case: Case[Any], sidecar: LiveSidecar, guard: StateGuard) -> None:
    call_and_check(case, sidecar, guard)


def test_links(sidecar: LiveSidecar, guard: StateGuard) -> None:
    run_links(schema, sidecar, guard, scenarios=max(EXAMPLES, 1), steps=10)


def test_store_reads_back(sidecar: LiveSidecar, redis_address: str) -> None:
    print(f"{sidecar.cases} requests fuzzed on {sidecar.backend}")  # pytest -rP shows it
    check_store_reads_back(sidecar, redis_address)
