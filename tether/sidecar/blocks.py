"""The blocks the sidecar mounts: each block's service with its HTTP routes.

A block's logic is a service in ``tether.platform.<block>`` built from a
:class:`~tether.platform.blocks.BlockContext`; its HTTP API is a module here
(``tether.sidecar.<block>``) whose factory returns an :class:`ApiBlock`: the service's
routes, plus its start and close. A factory returns None when the app has no component of
its kind. Keeping the list here means a new block touches one line of the sidecar, not its
assembly code.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tether.platform.bindings.registry import BINDING_TYPES
from tether.platform.blocks import BlockContext
from tether.platform.components.registry import ComponentTypes
from tether.platform.configuration.registry import CONFIGURATION_TYPES
from tether.platform.lock.registry import LOCK_TYPES
from tether.platform.pubsub.registry import PUBSUB_TYPES
from tether.platform.secrets.registry import SECRET_STORE_TYPES
from tether.platform.state.registry import STATE_TYPES
from tether.sidecar.actors import actors_block
from tether.sidecar.api_block import ApiBlock
from tether.sidecar.bindings import bindings_block
from tether.sidecar.configuration import configuration_block
from tether.sidecar.invoke import invoke_block
from tether.sidecar.jobs import jobs_block
from tether.sidecar.lock import lock_block
from tether.sidecar.secrets import secrets_block
from tether.sidecar.state import state_block
from tether.sidecar.workflows import workflow_block

BlockFactory = Callable[[BlockContext], ApiBlock | None]

#: the factories the sidecar calls, in order; a block adds itself here
BLOCK_FACTORIES: list[BlockFactory] = [
    secrets_block,
    state_block,
    lock_block,
    configuration_block,
    workflow_block,
    invoke_block,
    bindings_block,
    actors_block,
    jobs_block,
]


#: every component type the sidecar builds, per block (the pub/sub registry's and each
#: block's): a component of any other type is a load error (docs/components.md)
COMPONENT_TYPES: tuple[ComponentTypes[..., Any], ...] = (
    PUBSUB_TYPES,
    STATE_TYPES,
    SECRET_STORE_TYPES,
    LOCK_TYPES,
    CONFIGURATION_TYPES,
    BINDING_TYPES,
)

#: the component types whose data lives in the sidecar process's memory: they cannot serve a
#: sidecar whose API runs in several processes (tether run --api-processes)
PROCESS_LOCAL_TYPES = frozenset({"pubsub.in-memory", "state.in-memory"})


def build_blocks(
    context: BlockContext, factories: Sequence[BlockFactory] | None = None
) -> list[ApiBlock]:
    """The blocks the app's components call for; a bad component raises BlockConfigError."""
    chosen = BLOCK_FACTORIES if factories is None else factories
    return [block for factory in chosen if (block := factory(context)) is not None]
