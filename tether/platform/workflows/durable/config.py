"""Where the runtime's broker and state store come from, and its namespace.

In order: what the code passes (``broker_url=``, ``state_store=`` a Component, or open
``Broker``/``StateStore`` objects); else the resources of the sidecar that started the app
(``tether run`` sets ``TETHER_RESOURCES_PATH`` and ``TETHER_APP_ID``), filtered by the app's
scopes and with their ``secretKeyRef`` values resolved, as the sidecar sees them, and chosen
by :func:`choose_components` (the sidecar's workflow API uses the same function); else the
embedded defaults, a broker and a SQLite state file in ``env.data_dir()`` (``.tether/``,
or the folder ``tether run`` gives its apps in ``TETHER_DATA_DIR``: its sidecars' own).

The namespace (topics, groups, state keys): ``namespace=`` if given, else
``names.namespace_for`` of the app id (``app_id=``, else the ``TETHER_APP_ID``/``APP_ID``
that ``tether run`` sets).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from tether.brokers import Broker
from tether.platform import env
from tether.platform.components import Component
from tether.platform.components.loader import default_broker_path, load_resources
from tether.platform.errors import ConfigError
from tether.platform.pubsub.registry import broker_spec, open_spec
from tether.platform.secrets import resolve_app_secrets
from tether.platform.state.registry import open_state_store
from tether.platform.state.store import StateStore
from tether.platform.workflows.durable.names import Names, namespace_for

DEFAULT_STATE_FILE = "workflows.db"
RESOURCES_ENV = env.TETHER_RESOURCES_PATH
#: the app id for scopes when there is none (``load_resources`` needs one)
NO_APP_ID = "app"
#: pick a pub/sub component by name (default: the first one)
PUBSUB_ENV = env.TETHER_WORKFLOW_PUBSUB


class ComponentChoiceError(ConfigError):
    """The app's components leave no single pub/sub or workflow state store to use."""


@dataclass(frozen=True, slots=True)
class WorkflowComponents:
    """What :func:`choose_components` picked; None: use the embedded default."""

    pubsub: Component | None
    state: Component | None


def _actor_store(component: Component) -> bool:
    return (component.value("actorStateStore") or "").strip().lower() == "true"


def choose_components(components: Sequence[Component]) -> WorkflowComponents:
    """Pick the workflow pub/sub and state store among an app's components (already
    filtered by scopes, secrets resolved), for the runtime and the sidecar alike:

    * pub/sub: the one named by ``TETHER_WORKFLOW_PUBSUB`` (naming none is an error), else
      the first;
    * state: the store marked ``actorStateStore: "true"`` (Dapr's mark for where workflow
      state lives; two marked is an error, as Dapr refuses it), else the first store.
    """
    pubsubs = [c for c in components if c.block == "pubsub"]
    wanted = env.get(PUBSUB_ENV)
    if wanted:
        pubsubs = [c for c in pubsubs if c.name == wanted]
        if not pubsubs:
            raise ComponentChoiceError(
                f"{PUBSUB_ENV}={wanted!r} names no pub/sub component of this app")
    states = [c for c in components if c.block == "state"]
    actor = [c for c in states if _actor_store(c)]
    if len(actor) > 1:
        names = ", ".join(repr(c.name) for c in actor)
        raise ComponentChoiceError(
            f"several state stores are marked actorStateStore: {names}; mark only one")
    chosen = actor or states
    return WorkflowComponents(pubsubs[0] if pubsubs else None,
                              chosen[0] if chosen else None)


def default_broker_url() -> str:
    """The broker of the embedded default ``pubsub`` component, which a sidecar without a
    pub/sub component opens too."""
    return "embedded://" + quote(str(default_broker_path()))


def default_state_component() -> Component:
    return Component(name="workflowstate", type="state.sqlite",
                     metadata={"connectionString": str(env.data_dir() / DEFAULT_STATE_FILE)})


@dataclass
class RuntimeConfig:
    """How a WorkflowRuntime or a client reaches its broker and state store."""

    broker_url: str | None = None
    state_store: Component | None = None
    #: already opened objects (the caller keeps ownership: they are not closed)
    broker: Broker | None = None
    store: StateStore | None = None
    #: None: ``namespace_for(app id)`` (one namespace per app)
    namespace: str | None = None
    #: None: the app id `tether run` gives in the environment (or none: a plain script)
    app_id: str | None = None
    #: a relative SQLite path is resolved against this (default: the current folder)
    base_dir: Path | None = None
    resources_path: str | None = field(
        default_factory=lambda: env.get(RESOURCES_ENV))

    @property
    def effective_app_id(self) -> str | None:
        return self.app_id or env.app_id()

    @property
    def names(self) -> Names:
        return Names(self.namespace or namespace_for(self.effective_app_id))


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


async def _from_resources(config: RuntimeConfig) -> WorkflowComponents:
    """The components of the sidecar's resources, as the sidecar's workflow API picks them."""
    if not config.resources_path:
        return WorkflowComponents(None, None)
    paths = config.resources_path.split(os.pathsep)
    app_id = config.effective_app_id or NO_APP_ID
    resources = load_resources(paths, app_id)
    # as the sidecar: only the components scoped to this app, secretKeyRef values resolved
    components = await resolve_app_secrets(resources.components_for(app_id), config.base_dir)
    return choose_components(components)


async def connect(config: RuntimeConfig) -> Connection:
    """Open (and connect) the broker and the store ``config`` names."""
    chosen = await _from_resources(config)
    pubsub, state = chosen.pubsub, chosen.state
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

            broker = open_broker(default_broker_url())
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
