"""Which broker and state store the sidecar's workflow API uses.

The runtime's own function (``runtime/config.py``, ``choose_components``), so an app started
by ``tether run`` and its sidecar meet on the same broker and store:

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

from tether.platform.blocks import BlockConfigError
from tether.platform.components import Component
from tether.platform.state.registry import state_store_spec
from tether.platform.workflows.durable.config import (
    ComponentChoiceError,
    choose_components,
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
