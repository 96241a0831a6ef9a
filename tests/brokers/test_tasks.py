"""cancel_task: stops a task, and never swallows a cancel meant for its caller."""

from __future__ import annotations

import asyncio

import pytest

from tether.platform.aio import cancel_task

WAIT = 30.0


async def forever() -> None:
    await asyncio.Event().wait()


async def test_cancel_task_stops_a_running_task() -> None:
    task = asyncio.create_task(forever())
    await asyncio.sleep(0)
    await cancel_task(task)
    assert task.cancelled()
    await cancel_task(task)  # done: nothing to do
    await cancel_task(None)


async def test_cancel_task_reraises_a_task_failure() -> None:
    started = asyncio.Event()

    async def fails_on_cancel() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            raise RuntimeError("cleanup failed") from None

    task = asyncio.create_task(fails_on_cancel())
    await started.wait()
    with pytest.raises(RuntimeError, match="cleanup failed"):
        await cancel_task(task)


async def test_a_cancel_of_the_caller_while_it_waits_is_passed_on() -> None:
    cleaning, cleaned = asyncio.Event(), asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cleaning.set()
            await cleaned.wait()
            raise

    worker = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    caller = asyncio.create_task(cancel_task(worker))
    await asyncio.wait_for(cleaning.wait(), WAIT)
    caller.cancel()  # the caller is cancelled while cancel_task waits for the worker
    await asyncio.sleep(0)
    cleaned.set()
    await asyncio.wait({caller}, timeout=WAIT)
    assert worker.done()
    assert caller.cancelled(), "cancel_task swallowed the cancel of its caller"
