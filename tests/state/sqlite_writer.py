"""A separate process that increments a counter in a SQLite state store with ETags.

Usage: sqlite_writer.py <db path> <key> <times>. Used by test_store_specifics.py to show
that several processes sharing one file never lose an update.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tether.platform.state.store import ETagMismatchError, SetOperation
from tether.platform.state.stores.sqlite import SqliteStateStore


async def main(path: str, key: str, times: int) -> None:
    store = await SqliteStateStore.open(
        Path(path), table="state", metadata_table="state_meta", busy_timeout=30.0
    )
    done = 0
    while done < times:
        item = await store.get(key)
        value = 0 if item is None else int(item.value)
        try:
            await store.set(SetOperation(key, str(value + 1).encode(),
                                         etag=None if item is None else item.etag,
                                         first_write=item is None))
            done += 1
        except ETagMismatchError:
            pass
    await store.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))
