"""The in-process app channel: the delivery worker calls the app's handlers directly.

A handler's answer maps onto the delivery outcomes the HTTP channel reads from a status
code: returning is SUCCESS, raising :class:`Retry` is RETRY, raising :class:`Drop` is DROP,
and any other exception is logged and retried (as an HTTP 500 would be).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from tether.platform.events import CloudEvent
from tether.workers.app_channel import Outcome

log = logging.getLogger(__name__)

#: what ``@app.subscribe`` accepts: ``async def f(event)`` or ``def f(event)``
Handler = Callable[[CloudEvent], Awaitable[Any] | Any]


class Retry(Exception):
    """Raised by a handler: deliver this event again later.

    ``delay`` is the least time before the redelivery: the channel holds the event that
    long before answering RETRY, and the worker's backoff comes on top.
    """

    def __init__(self, delay: float | None = None) -> None:
        super().__init__(f"retry in {delay}s" if delay is not None else "retry")
        self.delay = delay


class Drop(Exception):
    """Raised by a handler: never deliver this event again (dead-letter topic if set)."""

    def __init__(self, reason: str = "dropped by the handler") -> None:
        super().__init__(reason)
        self.reason = reason


class InProcessChannel:
    """Delivers to ``handlers[path]``; sync handlers run in a thread."""

    def __init__(self, handlers: Mapping[str, Handler]) -> None:
        self._handlers = dict(handlers)

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        handler = self._handlers.get(path)
        if handler is None:  # as an HTTP 404
            log.error("no handler for path %r; dropping event %s", path, event.id)
            return Outcome.DROP
        return await outcome_of_call(handler, event, path, event.id)


async def outcome_of_call(handler: Callable[[Any], Awaitable[Any] | Any], argument: Any,
                          path: str, what: str) -> Outcome:
    """Run ``handler(argument)`` and read its end as a delivery outcome: returning is
    SUCCESS, :class:`Retry` RETRY (after its delay), :class:`Drop` DROP, any other
    exception RETRY (logged)."""
    try:
        await call(handler, argument)
    except Retry as retry:
        if retry.delay:
            await asyncio.sleep(retry.delay)
        return Outcome.RETRY
    except Drop as drop:
        log.info("handler %s dropped event %s: %s", path, what, drop.reason)
        return Outcome.DROP
    except Exception:
        log.exception("handler %s failed on event %s; it will be retried", path, what)
        return Outcome.RETRY
    return Outcome.SUCCESS


async def call(handler: Callable[[Any], Awaitable[Any] | Any], event: Any) -> None:
    if inspect.iscoroutinefunction(handler):
        await handler(event)
        return
    result = await asyncio.to_thread(handler, event)
    if inspect.isawaitable(result):  # a sync callable that returned a coroutine
        await result
