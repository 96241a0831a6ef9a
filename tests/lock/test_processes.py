"""Several real processes contend for one lock: mutual exclusion, and expiry after SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTENDER = Path(__file__).with_name("contender.py")
PROCESSES = 4
ROUNDS = 15
HOLD_EXPIRY = 6


def spawn(
    kind: str, address: str, key: str, me: str, records: Path, *mode: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, str(CONTENDER), kind, address, key, me, str(records), *mode],
        cwd=ROOT, env=env,
    )


def lines(records: Path) -> list[list[str]]:
    if not records.exists():
        return []
    return [line.split() for line in records.read_text().splitlines()]


def wait_for(condition, timeout: float = 120) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def test_processes_never_hold_the_lock_together(
    store_kind: str, store_address: str, tmp_path: Path
) -> None:
    key = f"lock||app||{uuid.uuid4()}"
    records = tmp_path / "records.txt"
    procs = [
        spawn(store_kind, store_address, key, f"p{i}", records, "rounds", str(ROUNDS))
        for i in range(PROCESSES)
    ]
    try:
        wait_for(lambda: sum(r[0] == "ready" for r in lines(records)) == PROCESSES)
        Path(f"{records}.go").touch()
        for proc in procs:
            assert proc.wait(240) == 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    holder: str | None = None
    entered: dict[str, int] = {}
    failed = 0
    for what, who, *rest in lines(records):
        if what in ("ready", "done"):
            failed += int(rest[0]) if rest else 0
            continue
        if what == "enter":
            assert holder is None, f"{who} entered while {holder} held the lock"
            holder = who
            entered[who] = entered.get(who, 0) + 1
        else:
            assert what == "exit" and holder == who, f"{what} {who} while {holder} held it"
            holder = None
    assert holder is None
    assert entered == {f"p{i}": ROUNDS for i in range(PROCESSES)}
    # the processes really contended: some tried while another held the lock
    assert failed > 0


def test_a_killed_holder_keeps_the_lock_until_its_expiry(
    store_kind: str, store_address: str, tmp_path: Path
) -> None:
    key = f"lock||app||{uuid.uuid4()}"
    records = tmp_path / "records.txt"
    holder = spawn(store_kind, store_address, key, "holder", records, "hold", str(HOLD_EXPIRY))
    try:
        wait_for(lambda: any(r[0] == "acquired" for r in lines(records)))
        holder.kill()  # SIGKILL: no unlock, no cleanup
        assert holder.wait(30) == -9
    finally:
        if holder.poll() is None:
            holder.kill()
    before = float(next(r for r in lines(records) if r[0] == "before")[2])
    # the lock expires no earlier than before + HOLD_EXPIRY (the store's clock reads the
    # same wall clock as this process)
    waiter = spawn(store_kind, store_address, key, "waiter", records, "wait")
    try:
        assert waiter.wait(240) == 0
    finally:
        if waiter.poll() is None:
            waiter.kill()
    got = next(r for r in lines(records) if r[0] == "got")
    assert float(got[2]) >= before + HOLD_EXPIRY, "the lock was taken before its expiry"
    first = next(r for r in lines(records) if r[0] == "first")
    if float(first[2]) < before + HOLD_EXPIRY:
        # the first try ended before the expiry could have passed: the dead owner's lock
        # must still have been held then
        assert first[3] == "0", "the lock was free before its owner's expiry"
        assert int(got[3]) > 0
