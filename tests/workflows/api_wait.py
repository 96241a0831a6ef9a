"""Polling for a condition with a generous deadline (tests run on a loaded machine)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

DEFAULT_TIMEOUT = 90.0


async def wait_until(check: Callable[[], Awaitable[Any]], timeout: float = DEFAULT_TIMEOUT
                     ) -> Any:
    """``check()``'s first truthy result; AssertionError with the last result after
    ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    pause = 0.02
    while True:
        result = await check()
        if result:
            return result
        if loop.time() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        await asyncio.sleep(pause)
        pause = min(pause * 1.5, 0.5)
