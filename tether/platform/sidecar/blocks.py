"""Building blocks beyond pub/sub plug into the sidecar here.

Each block (state, secrets, configuration, lock, workflows, ...) lives in its own package
and contributes a factory to :data:`BLOCK_FACTORIES`. A factory gets the app's loaded
components and returns the block's HTTP routes, or None when the app has no component of
its kind. Keeping the list here means a new block touches one line of the sidecar, not
its assembly code.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aiohttp import web

from tether.platform.components import Component
from tether.platform.pubsub import PubSubRegistry


class BlockConfigError(ValueError):
    """A component a block cannot use; the message names it (the sidecar does not start)."""


@dataclass(frozen=True, slots=True)
class BlockContext:
    """What a block factory may use to build itself."""

    app_id: str
    #: the app's components, already filtered by scopes
    components: Sequence[Component]
    #: the pub/sub brokers (a state change feed or an outbox publishes through them)
    pubsub: PubSubRegistry
    #: the port the app listens on (None: no app channel), for blocks that push to the app
    app_port: int | None = None
    #: the ``spec`` of the app's Configuration resource (``tether run --config``); {} without
    configuration: Mapping[str, Any] = field(default_factory=dict)


class ApiBlock(Protocol):
    """One building block's HTTP API and the resources it holds."""

    def routes(self) -> Sequence[web.RouteDef]:
        """The block's routes (full paths, e.g. ``/v1.0/state/{store}``)."""

    async def start(self) -> None:
        """Open what must be open before the first request (connections, watchers)."""

    async def close(self) -> None:
        """Release what :meth:`start` opened; called once when the sidecar stops."""


BlockFactory = Callable[[BlockContext], ApiBlock | None]


def _secrets(context: BlockContext) -> ApiBlock | None:
    from tether.platform.secrets.api import secrets_block  # lazy: it imports this module

    return secrets_block(context)


def _state(context: BlockContext) -> ApiBlock | None:
    from tether.platform.state.api import state_block  # lazy: it imports this module

    return state_block(context)


def _lock(context: BlockContext) -> ApiBlock | None:
    from tether.platform.lock.api import lock_block  # lazy: it imports this module

    return lock_block(context)


def _configuration(context: BlockContext) -> ApiBlock | None:
    from tether.platform.configuration.api import configuration_block  # lazy, as above

    return configuration_block(context)


def _workflows(context: BlockContext) -> ApiBlock | None:
    from tether.platform.workflows.api import workflow_block  # lazy: it imports this module

    return workflow_block(context)


#: the factories the sidecar calls, in order; a block adds itself here
BLOCK_FACTORIES: list[BlockFactory] = []
BLOCK_FACTORIES.append(_secrets)
BLOCK_FACTORIES.append(_state)
BLOCK_FACTORIES.append(_lock)
BLOCK_FACTORIES.append(_configuration)
BLOCK_FACTORIES.append(_workflows)


def build_blocks(
    context: BlockContext, factories: Sequence[BlockFactory] | None = None
) -> list[ApiBlock]:
    """The blocks the app's components call for; a bad component raises BlockConfigError."""
    chosen = BLOCK_FACTORIES if factories is None else factories
    return [block for factory in chosen if (block := factory(context)) is not None]
