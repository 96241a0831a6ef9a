"""Task helpers the backends share."""

from __future__ import annotations

import asyncio


async def cancel_task(task: asyncio.Task[None] | None) -> None:
    """Cancel a background task and wait until it has stopped (None or done: nothing to do).

    A cancel of the caller while it waits is passed on, not taken for the task's end: the
    task's CancelledError and the caller's look the same, so the caller's cancelling() count
    tells them apart (swallowing it would leave that count stale and the caller running).
    """
    if task is None or task.done():
        return
    caller = asyncio.current_task()
    cancels_before = caller.cancelling() if caller is not None else 0
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        if caller is not None and caller.cancelling() > cancels_before:
            raise
