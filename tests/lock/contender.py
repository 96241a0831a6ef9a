"""A process contending for one lock (run by test_processes.py, not collected by pytest).

    python contender.py KIND ADDRESS KEY ID RECORDS MODE [ARG]

KIND is redis or sqlite, ADDRESS the Redis host:port or the SQLite file. Records go to the
file RECORDS, one line per write (O_APPEND, so lines from several processes never mix):

- ``rounds N``: write ``ready ID``, wait for the file RECORDS.go (so all start together),
  then take the lock N times; each time write ``enter ID`` and ``exit ID`` while holding
  it, then unlock; retry quickly while someone else holds it. Ends with
  ``done ID <failed attempts>``.
- ``hold EXPIRY``: write ``before ID <time>`` just before taking the lock for EXPIRY
  seconds, ``acquired ID`` once held, then sleep until killed.
- ``wait``: try until the lock is taken; write ``first ID <time> <0|1>`` after the first
  try (1: it got the lock) and ``got ID <time> <failed attempts>`` at the end.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import time
import uuid
from pathlib import Path

from tests.lock.conftest import lock_component
from tether.platform.lock.registry import lock_stores
from tether.platform.lock.store import LockStore, UnlockStatus


def record(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


async def rounds(store: LockStore, key: str, me: str, records: str, count: int) -> None:
    record(records, f"ready {me}")
    go = Path(records + ".go")
    while not go.exists():  # noqa: ASYNC110, ASYNC240 - another process creates it
        await asyncio.sleep(0.01)
    done = failed = 0
    while done < count:
        owner = f"{me}-{uuid.uuid4()}"
        if not await store.try_lock(key, owner, 60):
            failed += 1
            await asyncio.sleep(random.uniform(0.001, 0.01))
            continue
        record(records, f"enter {me}")
        # hold it a moment, so that the others really try while it is held
        await asyncio.sleep(random.uniform(0.001, 0.02))
        record(records, f"exit {me}")
        status = await store.unlock(key, owner)
        assert status is UnlockStatus.SUCCESS, status
        done += 1
    record(records, f"done {me} {failed}")


async def hold(store: LockStore, key: str, me: str, records: str, expiry: int) -> None:
    record(records, f"before {me} {time.time():.6f}")
    assert await store.try_lock(key, me, expiry)
    record(records, f"acquired {me}")
    await asyncio.Event().wait()  # until SIGKILL


async def wait(store: LockStore, key: str, me: str, records: str) -> None:
    failed = 0
    taken = await store.try_lock(key, me, 60)
    record(records, f"first {me} {time.time():.6f} {int(taken)}")
    while not taken:
        failed += 1
        await asyncio.sleep(0.02)
        taken = await store.try_lock(key, me, 60)
    record(records, f"got {me} {time.time():.6f} {failed}")


async def main(argv: list[str]) -> None:
    kind, address, key, me, records, mode, *rest = argv
    redis = address if kind == "redis" else None
    component = lock_component(kind, "locks", redis, Path(address))
    store = lock_stores([component], "app")["locks"].store
    await store.start()
    try:
        if mode == "rounds":
            await rounds(store, key, me, records, int(rest[0]))
        elif mode == "hold":
            await hold(store, key, me, records, int(rest[0]))
        else:
            await wait(store, key, me, records)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
