"""Where the runtime's events and records live: topic, group and state key names.

Everything hangs off one ``namespace``, so two apps (or two tests) sharing a broker and a
store never see each other's instances or activity tasks. :func:`namespace_for` picks it:
``TETHER_WORKFLOW_NAMESPACE`` if set, else ``tether.workflow.<app id>``, else (no app id at
all: a plain script) ``tether.workflow``."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tether.platform import env
from tether.platform.state.relay import private_marker

DEFAULT_NAMESPACE = "tether.workflow"
#: overrides the namespace of the runtime, its clients and the sidecar's workflow API
NAMESPACE_ENV = env.TETHER_WORKFLOW_NAMESPACE
#: the app id `tether run` gives the app (Dapr's APP_ID, and Tether's own name for it)
APP_ID_ENVS = (env.TETHER_APP_ID, env.APP_ID)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def namespace_for(app_id: str | None) -> str:
    """The namespace of an app: ``TETHER_WORKFLOW_NAMESPACE`` if set, else one per app id
    (characters a topic name may not hold become ``_``), else the shared default."""
    override = env.get(NAMESPACE_ENV)
    if override:
        return override
    if app_id:
        return f"{DEFAULT_NAMESPACE}.{_UNSAFE.sub('_', app_id)}"
    return DEFAULT_NAMESPACE
#: the ``pubsub`` field of the runtime's outbox records: the relay publishes only these
OUTBOX_MARKER_PREFIX = private_marker("workflow:")


@dataclass(frozen=True, slots=True)
class Names:
    namespace: str = DEFAULT_NAMESPACE

    # --- topics and groups -------------------------------------------------------------------
    @property
    def orchestrations(self) -> str:
        """Orchestration events, keyed by instance id."""
        return f"{self.namespace}.orchestrations"

    @property
    def activities(self) -> str:
        """Activity tasks, consumed by any worker."""
        return f"{self.namespace}.activities"

    @property
    def timers(self) -> str:
        """The schedule topic of the runtime's own scheduler (durable timers)."""
        return f"{self.namespace}.timers"

    @property
    def orchestrations_group(self) -> str:
        return f"{self.namespace}.orchestrators"

    @property
    def activities_group(self) -> str:
        return f"{self.namespace}.activity-workers"

    @property
    def timers_group(self) -> str:
        return f"{self.namespace}.timer-scheduler"

    @property
    def outbox_marker(self) -> str:
        return OUTBOX_MARKER_PREFIX + self.namespace

    # --- state keys ----------------------------------------------------------------------------
    def meta_key(self, instance_id: str) -> str:
        return f"{self.namespace}||instance||{instance_id}||meta"

    def chunk_key(self, instance_id: str, index: int) -> str:
        return f"{self.namespace}||instance||{instance_id}||history||{index}"

    def registration_key(self, kind: str, name: str) -> str:
        """``kind`` is "workflow" or "activity"."""
        return f"{self.namespace}||registry||{kind}||{name}"
