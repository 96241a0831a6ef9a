"""The Service Bus backend in the contract suite, over the in-memory FAKE namespace
(tests/brokers/servicebus_fake.py): no Service Bus server can run here.

The harness builds brokers with the fake's clients directly instead of going through
``open_broker(url)``, so the production module has no test-only path.

It runs the default configuration (sessions on). Two things to know when reading results:

* ``replay_to_new_subscriptions``: the suite publishes before it subscribes; on Azure a
  subscription only receives what is sent after it exists, so the fake replays earlier
  messages to a new subscription, standing in for subscriptions declared ahead of time
  (``ServiceBusBroker.declare_group``). tests/brokers/test_servicebus.py runs the honest fake;
* two cases assert the order of events with different keys on a one-partition topic
  (test_round_trip_of_every_attribute, test_bad_bytes_...). Service Bus has no partitions:
  each key is its own session and nothing orders two sessions. Those assertions hold here
  because the fake offers sessions oldest-first and answers at once; Azure promises neither.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from azure.servicebus import ServiceBusMessage

from tests.brokers.harness import Harness
from tests.brokers.servicebus_fake import FakeServiceBusNamespace
from tether.brokers import Broker
from tether.brokers.servicebus import ServiceBusBroker, ServiceBusSettings

#: short waits: the fake answers at once, so an idle receive only delays shutdown
CONTRACT_SETTINGS = ServiceBusSettings(sessions=True, idle_timeout=0.05)


class ServiceBusHarness(Harness):
    name = "servicebus"
    unsupported = {
        "process_kill": "the fake Service Bus namespace lives in this process; a child "
        "process cannot share it (and no real Service Bus server can run here)",
    }

    def __init__(self, settings: ServiceBusSettings = CONTRACT_SETTINGS) -> None:
        self.namespace = FakeServiceBusNamespace(
            f"fake-{uuid.uuid4().hex[:8]}", replay_to_new_subscriptions=True
        )
        self.settings = settings

    def url(self) -> str:
        # never opened: broker() below builds brokers over the fake instead
        return f"servicebus://{self.namespace.host}"

    def broker(self) -> Broker:
        return ServiceBusBroker(self.namespace.clients(), self.url(), self.settings)

    async def inject_raw(self, topic: str, payload: bytes) -> None:
        # a foreign producer that knows the subscriptions may require a session id
        clients = self.namespace.clients()
        await clients.open()
        await clients.sender(topic).send_messages(
            ServiceBusMessage(payload, session_id="foreign")
        )


@pytest.fixture
def servicebus_harness() -> Iterator[ServiceBusHarness]:
    yield ServiceBusHarness()
