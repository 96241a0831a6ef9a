"""Where the runtime's broker and state store come from.

In order: what the code passes (``broker_url=``, ``state_store=`` a Component, or open
``Broker``/``StateStore`` objects); else the resources of the sidecar that started the app
(``tether run`` sets ``TETHER_RESOURCES_PATH`` and ``TETHER_APP_ID``): its first pub/sub
component and its state store marked ``actorStateStore: "true"`` (Dapr's rule for workflow
state), else its first state store; else the embedded defaults, a broker and a SQLite state
file in ``.tether/``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from tether.brokers import Broker
from tether.platform.components import Component
from tether.platform.components.loader import load_resources
from tether.platform.pubsub.registry import broker_spec, open_spec
from tether.platform.state.registry import open_state_store
from tether.platform.state.store import StateStore
from tether.platform.workflows.runtime.names import DEFAULT_NAMESPACE, Names

DEFAULT_BROKER_URL = "embedded://.tether/broker.db"
DEFAULT_STATE_PATH = ".tether/workflows.db"
RESOURCES_ENV = "TETHER_RESOURCES_PATH"
APP_ID_ENV = "TETHER_APP_ID"
#: pick a pub/sub component by name (default: the first one)
PUBSUB_ENV = "TETHER_WORKFLOW_PUBSUB"


def default_state_component(path: str = DEFAULT_STATE_PATH) -> Component:
    return Component(name="workflowstate", type="state.sqlite",
                     metadata={"connectionString": path})


@dataclass
class RuntimeConfig:
    """How a WorkflowRuntime or a client reaches its broker and state store."""

    broker_url: str | None = None
    state_store: Component | None = None
    #: already opened objects (the caller keeps ownership: they are not closed)
    broker: Broker | None = None
    store: StateStore | None = None
    namespace: str = DEFAULT_NAMESPACE
    #: a relative SQLite path is resolved against this (default: the current folder)
    base_dir: Path | None = None
    resources_path: str | None = field(
        default_factory=lambda: os.environ.get(RESOURCES_ENV) or None)

    @property
    def names(self) -> Names:
        return Names(self.namespace)


@dataclass
class Connection:
    broker: Broker
    store: StateStore
    names: Names
    owns_broker: bool
    owns_store: bool

    async def close(self) -> None:
        if self.owns_broker:
            await self.broker.close()
        if self.owns_store:
            await self.store.close()


def _from_resources(config: RuntimeConfig) -> tuple[Component | None, Component | None]:
    """(pub/sub component, state component) of the sidecar's resources, if any."""
    if not config.resources_path:
        return None, None
    paths = config.resources_path.split(os.pathsep)
    resources = load_resources(paths, os.environ.get(APP_ID_ENV, "app"))
    wanted = os.environ.get(PUBSUB_ENV)
    pubsubs = [c for c in resources.components if c.block == "pubsub"
               and (wanted is None or c.name == wanted)]
    states = [c for c in resources.components if c.block == "state"]
    actor = [c for c in states if (c.value("actorStateStore") or "").lower() == "true"]
    chosen = actor or states
    return (pubsubs[0] if pubsubs else None), (chosen[0] if chosen else None)


async def connect(config: RuntimeConfig) -> Connection:
    """Open (and connect) the broker and the store ``config`` names."""
    pubsub, state = _from_resources(config)
    owns_broker = config.broker is None
    broker = config.broker
    if broker is None:
        if config.broker_url is not None:
            from tether.brokers import open_broker

            broker = open_broker(config.broker_url)
        elif pubsub is not None:
            broker = open_spec(broker_spec(pubsub))
        else:
            from tether.brokers import open_broker

            broker = open_broker(DEFAULT_BROKER_URL)
        await broker.connect()
    owns_store = config.store is None
    store = config.store
    if store is None:
        try:
            component = config.state_store or state or default_state_component()
            store = await open_state_store(component, config.base_dir or Path.cwd())
        except BaseException:
            if owns_broker:
                await broker.close()
            raise
    return Connection(broker, store, config.names, owns_broker, owns_store)
