"""Where the runtime's events and records live: topic, group and state key names.

Everything hangs off one ``namespace`` (default ``tether.workflow``), so two apps (or two
tests) sharing a broker and a store never see each other's instances."""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "tether.workflow"
#: the ``pubsub`` field of the runtime's outbox records: the relay publishes only these
OUTBOX_MARKER_PREFIX = "tether-workflow:"


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
