"""Which broker and state store the sidecar's workflow API uses.

The same rule as the runtime's discovery (``runtime/config.py``), so an app started by
``tether run`` and its sidecar meet on the same broker and store:

* pub/sub: the component named by ``TETHER_WORKFLOW_PUBSUB`` if set, else the app's first
  pub/sub component (without resources that is the embedded default ``pubsub`` at
  ``.tether/broker.db``); with no pub/sub component at all, the embedded default broker;
* state: the app's state store with ``actorStateStore: "true"`` (Dapr's mark for where
  workflow state lives), else its first state store, else a SQLite file
  ``.tether/workflows.db``.

The choice is checked at sidecar startup (a bad state component stops it, naming the
component); the broker and store are opened on the first workflow request, so an app that
never uses workflows opens nothing.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from tether.platform.components import Component
from tether.platform.sidecar.blocks import BlockConfigError
from tether.platform.state.registry import state_store_spec
from tether.platform.workflows.runtime.config import PUBSUB_ENV, default_state_component


@dataclass(frozen=True, slots=True)
class WorkflowBackend:
    """The chosen components: ``pubsub`` None means the embedded default broker."""

    pubsub: Component | None
    state: Component


def _actor_store(component: Component) -> bool:
    return (component.value("actorStateStore") or "").strip().lower() == "true"


def choose_backend(components: Sequence[Component]) -> WorkflowBackend:
    """Pick the components as described above; BlockConfigError for a bad choice."""
    pubsubs = [c for c in components if c.block == "pubsub"]
    wanted = os.environ.get(PUBSUB_ENV)
    if wanted:
        pubsubs = [c for c in pubsubs if c.name == wanted]
        if not pubsubs:
            raise BlockConfigError(
                f"{PUBSUB_ENV}={wanted!r} names no pub/sub component of this app")
    states = [c for c in components if c.block == "state"]
    actor = [c for c in states if _actor_store(c)]
    if len(actor) > 1:
        names = ", ".join(repr(c.name) for c in actor)
        raise BlockConfigError(
            f"several state stores are marked actorStateStore: {names}; mark only one")
    state = (actor or states or [default_state_component()])[0]
    state_store_spec(state)  # no I/O: a bad component stops the sidecar now
    return WorkflowBackend(pubsubs[0] if pubsubs else None, state)
