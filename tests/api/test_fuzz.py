"""schemathesis against a live sidecar, once per state store backend (tests/api/live.py):
every operation of the OpenAPI document fuzzed (its examples, coverage and fuzzing phases,
deterministic), then scenarios along the document's links (save then get or delete, start
then get or terminate, lock then unlock, subscribe then unsubscribe), then the store checked.

Each answer must be in the document (status, body schema, content type, headers); no 5xx
but Dapr's by-design ones (fuzzing.py); a refused state write changes none of its keys, and
every key it names reads back; after the run, a canary saved before it reads back unchanged
and every key of the store reads back (and the store answers queries). The module's tests
share one sidecar per backend, in this order. test_fuzz_soak.py is the same with many more
cases (``-m slow``).
"""

from __future__ import annotations

from typing import Any

from schemathesis import Case

from tests.api.fuzzing import (
    StateGuard,
    call_and_check,
    check_store_reads_back,
    fuzz_schema,
    run_links,
)
from tests.api.live import LiveSidecar

#: cases per operation in the fuzzing phase (the examples and coverage phases add theirs)
schema = fuzz_schema(max_examples=3)


@schema.parametrize()
def test_every_operation(case: Case[Any], sidecar: LiveSidecar, guard: StateGuard) -> None:
    call_and_check(case, sidecar, guard)


def test_links(sidecar: LiveSidecar, guard: StateGuard) -> None:
    run_links(schema, sidecar, guard, scenarios=15, steps=6)


def test_store_reads_back(sidecar: LiveSidecar, redis_address: str) -> None:
    print(f"{sidecar.cases} requests fuzzed on {sidecar.backend}")  # pytest -rP shows it
    check_store_reads_back(sidecar, redis_address)
