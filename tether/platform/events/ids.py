"""Event ids and times, cheap enough to make one per request.

An id is a random (version 4) UUID, as Dapr's, cut from a pool filled by one ``os.urandom``
call per 256 ids: ``str(uuid.uuid4())`` costs about four times as much per id (a syscall
and a UUID object each). A forked child empties its pool, so it never repeats its parent's
ids. The time is RFC 3339 in UTC with microseconds, formatted once per second and completed
with the microseconds per call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

POOL_SIZE = 256

_pool: list[str] = []


def new_id() -> str:
    """A fresh random UUID (version 4) in its 36-character form."""
    if not _pool:
        _pool.extend(new_ids(POOL_SIZE))
    return _pool.pop()


def new_ids(count: int) -> Iterator[str]:
    """``count`` fresh random UUIDs (version 4) from one ``os.urandom`` call."""
    pool = bytearray(os.urandom(16 * count))
    for start in range(0, 16 * count, 16):
        pool[start + 6] = pool[start + 6] & 0x0F | 0x40  # version 4
        pool[start + 8] = pool[start + 8] & 0x3F | 0x80  # RFC 4122 variant
        h = pool[start:start + 16].hex()
        yield f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_second = -1
_second_text = ""


def now_text() -> str:
    """The current UTC time as RFC 3339 (``2026-12-07T21:14:46.168842Z``), as
    :func:`tether.platform.events.format_time` writes ``utc_now()``."""
    global _second, _second_text
    now = time.time()
    second = int(now)
    if second != _second:
        _second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        _second = second
    micros = int((now - second) * 1_000_000)
    return f"{_second_text}.{micros:06d}Z"


os.register_at_fork(after_in_child=_pool.clear)
