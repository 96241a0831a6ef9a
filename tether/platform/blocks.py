"""The block contract: what every building block gets to build itself, and what it gives.

A block (state, secrets, configuration, lock, workflows, ...) builds one service object from
a :class:`BlockContext`: the app's components, the pub/sub brokers and the resiliency
policies of its calls to components. The service holds
the block's logic and resources and raises :class:`~tether.platform.errors.ApiError` for a
bad call; the front ends (the sidecar's HTTP routes, later gRPC) only translate requests
and answers. Nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from tether.platform.components import Component
from tether.platform.errors import ConfigError
from tether.platform.resiliency import Resiliency

if TYPE_CHECKING:  # the contract sits below the blocks; the registry is one of them
    from tether.platform.pubsub import PubSubRegistry


class BlockConfigError(ConfigError):
    """A component a block cannot use; the message names it (the sidecar does not start)."""


@dataclass(frozen=True, slots=True)
class BlockContext:
    """What a block may use to build itself."""

    app_id: str
    #: the app's components, already filtered by scopes
    components: Sequence[Component]
    #: the pub/sub brokers (a state change feed or an outbox publishes through them)
    pubsub: PubSubRegistry
    #: the port the app listens on (None: no app channel), for blocks that push to the app
    app_port: int | None = None
    #: the ``spec`` of the app's Configuration resource (``tether run --config``); {} without
    configuration: Mapping[str, Any] = field(default_factory=dict)
    #: the app's Resiliency policies (none: every call runs once, as Dapr without any)
    resiliency: Resiliency = field(default_factory=Resiliency)


class Block(Protocol):
    """The resources of one building block, opened with the sidecar and closed after it."""

    async def start(self) -> None:
        """Open what must be open before the first call (connections, watchers)."""

    async def close(self) -> None:
        """Release what :meth:`start` opened; called once when the sidecar stops."""
