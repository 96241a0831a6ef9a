"""Group commit: requests made while a store call is in flight go out together in the next.

Many instances step at once; each step reads its metadata and writes one transaction. Sent
one by one, they queue behind each other on the store (one SQLite writer, one round trip
each on Redis and PostgreSQL). Grouped, a round of steps costs one ``bulk_get`` and one
``transact``, whatever the number of instances in it. The first request of an idle group
goes out at once, so a lone step waits for nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

Req = TypeVar("Req")
Res = TypeVar("Res")


class Grouped(Generic[Req, Res]):
    def __init__(self, run: Callable[[Sequence[Req]], Awaitable[Sequence[Res | BaseException]]],
                 max_group: int = 1000) -> None:
        self._run = run
        self._max = max_group
        self._pending: list[tuple[Req, asyncio.Future[Res]]] = []
        self._worker: asyncio.Task[None] | None = None

    async def submit(self, request: Req) -> Res:
        future: asyncio.Future[Res] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._pending:
            group, self._pending = self._pending[:self._max], self._pending[self._max:]
            live = [(r, f) for r, f in group if not f.cancelled()]
            if not live:
                continue
            try:
                results: Sequence[Res | BaseException] = await self._run([r for r, _ in live])
            except BaseException as exc:  # handed to every waiter
                results = [exc] * len(live)
                if isinstance(exc, asyncio.CancelledError):
                    for _, future in live:
                        if not future.done():
                            future.cancel()
                    raise
            for (_, future), result in zip(live, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, BaseException):
                    future.set_exception(result)
                else:
                    future.set_result(result)
