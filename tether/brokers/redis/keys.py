"""Where a topic's streams and a group's membership and leases live (see docs/brokers-redis.md)."""

from __future__ import annotations

from dataclasses import dataclass


def _escape(name: str) -> str:
    # ':' separates key parts, so a topic or group name must not contain a bare one
    return name.replace("%", "%25").replace(":", "%3A")


@dataclass(frozen=True, slots=True)
class Keys:
    namespace: str

    def partitions(self, topic: str) -> str:
        return f"{self.namespace}:{_escape(topic)}:partitions"

    def stream(self, topic: str, partition: int) -> str:
        return f"{self.namespace}:{_escape(topic)}:p{partition}"

    def members(self, topic: str, group: str) -> str:
        return f"{self.namespace}:{_escape(topic)}:g:{_escape(group)}:members"

    def lease(self, topic: str, group: str, partition: int) -> str:
        return f"{self.namespace}:{_escape(topic)}:g:{_escape(group)}:lease:{partition}"
