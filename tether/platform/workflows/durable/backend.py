"""Which broker and state store the workflow service (the sidecar's workflow API) uses, and
opening them.

The runtime's own function (``config.choose_components``), so an app started by
``tether run`` and its sidecar meet on the same broker and store:

* pub/sub: the component named by ``TETHER_WORKFLOW_PUBSUB`` if set, else the app's first
  pub/sub component (without resources that is the embedded default ``pubsub`` at
  ``.tether/broker.db``); with no pub/sub component at all, the embedded default broker;
  ``TETHER_WORKFLOW_PUBSUB`` naming no component stops the sidecar;
* state: the app's state store with ``actorStateStore: "true"`` (Dapr's mark for where
  workflow state lives; two marked stop the sidecar, as in Dapr), else its first state
  store, else a SQLite file ``.tether/workflows.db``.

The namespace is the app's (``names.namespace_for`` of the sidecar's app id, or
``TETHER_WORKFLOW_NAMESPACE``), the one the app's ``WorkflowRuntime`` derives from the
``TETHER_APP_ID`` that ``tether run`` gives it.

The choice is checked at sidecar startup (a bad state component stops it, naming the
component); the broker and store are opened on the first workflow request, so an app that
never uses workflows opens nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tether.platform.blocks import BlockConfigError, BlockContext
from tether.platform.components import Component
from tether.platform.state.registry import state_store_spec
from tether.platform.workflows.durable.config import (
    ComponentChoiceError,
    Connection,
    RuntimeConfig,
    choose_components,
    connect,
    default_state_component,
)


@dataclass(frozen=True, slots=True)
class WorkflowBackend:
    """The chosen components: ``pubsub`` None means the embedded default broker."""

    pubsub: Component | None
    state: Component


def choose_backend(components: Sequence[Component]) -> WorkflowBackend:
    """Pick the components with the runtime's ``choose_components``; BlockConfigError for a
    bad choice."""
    try:
        chosen = choose_components(components)
    except ComponentChoiceError as exc:
        raise BlockConfigError(f"workflow API: {exc}") from exc
    state = chosen.state or default_state_component()
    state_store_spec(state)  # no I/O: a bad component stops the sidecar now
    return WorkflowBackend(chosen.pubsub, state)


async def open_backend(backend: WorkflowBackend, context: BlockContext) -> Connection:
    """Connect: the app's pub/sub broker (shared with the sidecar's publish API, so the
    connection does not close it) and a state store connection of its own."""
    broker = (await context.pubsub.broker(backend.pubsub.name)
              if backend.pubsub is not None else None)
    # the app's namespace: the one its WorkflowRuntime derives from the same app id
    config = RuntimeConfig(broker=broker, state_store=backend.state, resources_path=None,
                           app_id=context.app_id)
    return await connect(config)
