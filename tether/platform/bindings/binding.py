"""The binding contract: what an output binding answers and what an input source feeds.

A ``bindings.*`` component is built into a :class:`Binding` (``registry.py``) holding an
:class:`OutputBinding` (Dapr's ``POST /v1.0/bindings/{name}``), an :class:`InputSource`
(events from outside: a cron tick, a Kafka record, an MQTT message) or both. Nothing here
knows HTTP or the broker: the service (``service.py``) fronts the output side, and the input
worker (``tether.workers.bindings``) puts what a source reads on the binding's Tether topic
before the source acknowledges it.

Errors a component raises:

* :class:`BindingRequestError`: the caller's request cannot work (bad SQL, a path that
  escapes ``rootPath``, a missing ``key`` metadata field): 400, nothing changed;
* :class:`BindingNotFoundError`: what the call names does not exist (a ``get`` of a missing
  key or object): 404;
* :class:`BindingFailedError`: the component's server failed or is unreachable: 500, as Dapr
  answers ``ERR_INVOKE_OUTPUT_BINDING``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from tether.platform.errors import TetherError

#: Dapr's operation names (``bindings.OperationKind``); a component lists those it supports
CREATE = "create"
GET = "get"
DELETE = "delete"
LIST = "list"
EXEC = "exec"
QUERY = "query"
CLOSE = "close"


class BindingError(TetherError):
    """Base class of what a binding component raises for one call."""


class BindingRequestError(BindingError):
    """The request cannot work as given (the caller's mistake): 400, nothing changed."""


class BindingNotFoundError(BindingError):
    """What the request names does not exist: 404."""


class BindingFailedError(BindingError):
    """The component's server failed or is unreachable: 500."""


@dataclass(frozen=True, slots=True)
class BindingRequest:
    """One output call, as Dapr's ``{"data", "metadata", "operation"}`` body gives it.

    ``data`` is bytes as Dapr passes them to a component: a JSON string's text as it is, any
    other JSON value as its JSON text (``{"a":1}`` -> ``b'{"a":1}'``), empty when absent.
    """

    operation: str
    data: bytes = b""
    metadata: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BindingResponse:
    """What a component answers: ``data`` (None or empty: Dapr's 204), the metadata Dapr
    returns as ``metadata.<key>`` headers, and the data's content type when known."""

    data: bytes | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    content_type: str | None = None


@runtime_checkable
class OutputBinding(Protocol):
    """The output side of a component."""

    #: the operations :meth:`invoke` accepts (anything else: 400 before it is called)
    operations: frozenset[str]

    async def start(self) -> None:
        """Open connections; BindingFailedError when the server cannot be reached."""

    async def invoke(self, request: BindingRequest) -> BindingResponse:
        """Run one operation; raises a :class:`BindingError` subclass."""

    async def close(self) -> None:
        """Release what :meth:`start` opened."""


@dataclass(frozen=True, slots=True)
class InputMessage:
    """One event read from a source. ``key`` orders a source's keyed events (a Kafka
    record's key, an MQTT topic) and spreads the rest; ``metadata`` reaches the app as
    headers, as Dapr sends a component's metadata."""

    data: bytes
    metadata: Mapping[str, str] = field(default_factory=dict)
    key: str | None = None
    content_type: str | None = None


#: awaits until the message is durably on the binding's Tether topic; the source
#: acknowledges it (commits the offset, acks the AMQP delivery, PUBACKs) only after
Emit = Callable[[InputMessage], Awaitable[None]]


@runtime_checkable
class InputSource(Protocol):
    """The input side of a component."""

    #: True when the source has no consumer group of its own (cron, MQTT without shared
    #: subscriptions): only one replica of the app reads it at a time (a lease)
    exclusive: bool

    async def run(self, emit: Emit) -> None:
        """Read until cancelled, awaiting ``emit`` for each message before acknowledging
        it at the source; raise BindingFailedError when the source cannot be read (the
        worker logs it and starts the source again after a backoff)."""

    async def close(self) -> None:
        """Release the source's connections (after :meth:`run` was cancelled)."""


@dataclass(frozen=True, slots=True)
class Binding:
    """One built component: its output side, its input side, or both."""

    name: str
    type: str
    output: OutputBinding | None = None
    input: InputSource | None = None
    #: the app path events are posted to (the component's ``route`` metadata; default
    #: ``/<name>``)
    route: str = ""
    #: where an input event the app refused (DROP) or kept failing ends up (the
    #: ``deadLetterTopic`` metadata; default ``tether.binding.<name>.deadletter``)
    dead_letter_topic: str = ""
    #: input events handed to the app at once (``maxConcurrency``; 0: the default)
    max_concurrency: int = 0

    @property
    def app_route(self) -> str:
        return self.route or f"/{self.name}"
