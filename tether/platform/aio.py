"""asyncio helpers the layers share: the event loop, stopping a background task, and group
commit."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")
T = TypeVar("T")


def run(main: Coroutine[Any, Any, T], *, uvloop: bool = True) -> T:
    """``asyncio.run(main)``, on uvloop when asked and installed (it is a dependency where
    it builds): it takes about a fifth off the sidecar's CPU per request
    (docs/benchmarks.md), and nothing in Tether depends on the loop's implementation."""
    if uvloop:
        try:
            import uvloop as _uvloop
        except ImportError:  # Windows, or an install without it: the standard loop works
            pass
        else:
            with asyncio.Runner(loop_factory=_uvloop.new_event_loop) as runner:
                return runner.run(main)
    return asyncio.run(main)


async def singly(
    run: Callable[[Req], Awaitable[Res]], requests: Sequence[Req]
) -> list[Res | BaseException]:
    """Run each request alone, in order, each with its own result or exception: after a
    group failed as a whole for what may be one member's fault (a backend that can only
    refuse a whole batch), so a bad request does not fail its neighbours."""
    results: list[Res | BaseException] = []
    for request in requests:
        try:
            results.append(await run(request))
        except Exception as exc:  # that member's own answer
            results.append(exc)
    return results


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


class Grouped(Generic[Req, Res]):
    """Group commit: requests made while a call is in flight go out together in the next.

    ``run`` takes a group of requests and returns one result (or exception) per request,
    in order; an exception it raises is every member's. Requests made in the same loop
    turn form one group, and while a group is in flight the next one forms (at most
    ``max_group`` each), so a lone request waits for nothing and, under load, one call
    serves everything that queued up meanwhile (one store transaction, one pipeline).
    Groups run one at a time, in arrival order: a caller's request that follows one it saw
    answered goes out after it. :meth:`submit` waits for its result (a caller cancelled
    while waiting leaves the group: it is dropped if not sent yet, its answer ignored if it
    is); :meth:`put` does not wait (``run`` reports its own failures then).

    ``grouping=False`` makes :meth:`submit` run each request alone in the caller's task
    (what benchmarks and tests compare against; see ``TETHER_GROUP_COMMIT``).
    """

    def __init__(self, run: Callable[[Sequence[Req]], Awaitable[Sequence[Res | BaseException]]],
                 max_group: int = 1000, *, grouping: bool = True) -> None:
        self._run = run
        self._max = max_group
        self.grouping = grouping
        self._pending: list[tuple[Req, asyncio.Future[Res] | None]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, request: Req) -> Res:
        if not self.grouping:
            result = (await self._run([request]))[0]
            if isinstance(result, BaseException):
                raise result
            return result
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._enqueue(request, future)
        return await future

    def put(self, request: Req) -> None:
        self._enqueue(request, None)

    async def drain(self) -> None:
        """Wait until every request queued so far has been run."""
        while self._worker is not None and not self._worker.done():
            await asyncio.shield(self._worker)

    async def close(self) -> None:
        """Stop; requests still waiting fail with CancelledError."""
        await cancel_task(self._worker)
        self._worker = None
        pending, self._pending = self._pending, []
        for _, future in pending:
            if future is not None and not future.done():
                future.cancel()

    def _enqueue(self, request: Req, future: asyncio.Future[Res] | None) -> None:
        self._pending.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:self._max], self._pending[self._max:]
            live = [(r, f) for r, f in group if f is None or not f.cancelled()]
            if not live:
                continue
            try:
                results: Sequence[Res | BaseException] = await self._run([r for r, _ in live])
            except BaseException as exc:  # handed to every waiter
                results = [exc] * len(live)
                if isinstance(exc, asyncio.CancelledError):
                    for _, future in live:
                        if future is not None and not future.done():
                            future.cancel()
                    raise
            for (_, future), result in zip(live, results, strict=True):
                if future is None or future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
