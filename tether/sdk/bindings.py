"""Bindings in a :class:`tether.App`, with no sidecar and no HTTP hop: ``@app.binding``
handlers take the events of input bindings, ``app.invoke_binding`` calls output bindings.

The components come from the app's resources folder (``App(resources_path=...)``), as a
sidecar loads them; the input events travel on the app's pub/sub broker exactly as under
``tether run`` (:mod:`tether.workers.bindings`), so replicas share them and the lease and
dead-letter rules are the same. A handler's end is read as a subscription handler's:
returning acks, :class:`~tether.sdk.channel.Retry` retries, :class:`~tether.sdk.channel.Drop`
dead-letters (docs/bindings.md).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tether.platform.bindings.messages import read_input
from tether.platform.events import CloudEvent
from tether.sdk.channel import outcome_of_call
from tether.workers.app_channel import Outcome

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BindingEvent:
    """One input binding event: the source's ``data`` (bytes), its ``metadata`` (what a
    sidecar sends as headers) and the content type when the source knows it."""

    binding: str
    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None
    #: the id of the event that carried it on the broker (the same on every redelivery)
    id: str = ""

    def text(self) -> str:
        return self.data.decode()

    def json(self) -> Any:
        return json.loads(self.data)


#: what ``@app.binding`` accepts: ``async def f(event)`` or ``def f(event)``
BindingHandler = Callable[[BindingEvent], Awaitable[Any] | Any]


class InProcessBindingChannel:
    """Delivers input events to the handler registered for their route."""

    def __init__(self, handlers: Mapping[str, tuple[str, BindingHandler]]) -> None:
        #: route -> (binding name, handler)
        self._handlers = dict(handlers)

    async def probe(self, path: str) -> bool:
        return path in self._handlers

    async def deliver(self, path: str, event: CloudEvent) -> Outcome:
        found = self._handlers.get(path)
        if found is None:
            log.error("no binding handler for %r; dropping event %s", path, event.id)
            return Outcome.DROP
        name, handler = found
        try:
            message = read_input(event)
        except ValueError as exc:
            log.warning("unreadable binding event %s, dead-lettered: %s", event.id, exc)
            return Outcome.DROP
        argument = BindingEvent(name, message.data, dict(message.metadata),
                                message.content_type, event.id)
        return await outcome_of_call(handler, argument, path, event.id)

    async def close(self) -> None:
        pass
