"""How the broker contract suite reaches each backend.

Each backend has a module ``tests/brokers/harness_<name>.py`` defining ``harness`` (a pytest
fixture, function scope) that yields a :class:`Harness`. The contract suite in
``test_contract.py`` is parametrized over :data:`BACKENDS` and runs unchanged on each.
"""

from __future__ import annotations

import abc
import uuid

from tether.brokers import Broker, open_broker

#: backend names, in the order the suite runs them; each has tests/brokers/harness_<name>.py
BACKENDS = ("memory", "embedded", "kafka", "redis", "servicebus")


class Harness(abc.ABC):
    """One backend under test. Group timings (session timeout, heartbeat) must be short
    enough that a killed member's partitions move within about 10 seconds."""

    name: str
    #: contract cases this backend cannot honour, each with the reason (shown as a skip
    #: reason locally and as an xfail-free skip in CI only for the servicebus fake)
    unsupported: dict[str, str] = {}

    @abc.abstractmethod
    def url(self) -> str:
        """A broker URL for this test; brokers opened from it share one server/namespace."""

    def broker(self) -> Broker:
        return open_broker(self.url())

    @abc.abstractmethod
    async def inject_raw(self, topic: str, payload: bytes) -> None:
        """Put bytes that are not a CloudEvent on ``topic`` (as a foreign producer would)."""

    def topic(self, stem: str = "t") -> str:
        """A fresh topic name, so tests never see each other's events."""
        return f"{stem}-{uuid.uuid4().hex[:10]}"

    def group(self, stem: str = "g") -> str:
        return f"{stem}-{uuid.uuid4().hex[:10]}"
