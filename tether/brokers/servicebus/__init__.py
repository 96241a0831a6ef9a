"""``servicebus://``: Azure Service Bus topics and subscriptions (azure-servicebus, aio).

Mapping (docs/brokers-servicebus.md has the reasoning and the trade-offs):

* a Tether topic is a Service Bus topic; a consumer group is a subscription named after the
  group, created on first use with ``requires_session`` (when ``sessions=true``),
  ``max_delivery_count`` and ``forward_dead_lettered_messages_to=<dead-letter topic>``;
* ``partitionkey`` is the message's ``session_id``; a session receiver owns a session, so a
  key is handled by one member at a time, in order. Keyless events get a round-robin
  session id from a small fixed set, so they can reach session-enabled subscriptions too;
* receivers use PEEK_LOCK with an AutoLockRenewer; ack completes the message;
* ``nack`` keeps a keyed delivery locked and redelivers it from memory after the delay (so
  the key keeps its order); a keyless delivery is abandoned (delay 0) or re-sent as a copy
  scheduled for now + delay, addressed to this group only, and the original is completed;
* dead letters are native (``dead_letter_message`` with the reason); Service Bus forwards the
  subscription's dead-letter queue to the dead-letter topic, where the reason, the origin
  and the count come back as the ``deadletter*`` extensions.

Every SDK call goes through the small :class:`ServiceBusClients` seam, so tests can run the
adapter over an in-memory fake (no Service Bus server or emulator runs on our machines).

Modules: ``settings`` (URL and options), ``clients`` (the seam and the real SDK clients),
``errors`` (SDK errors as BrokerErrors), ``entities`` (names; topics, subscriptions, rules),
``retries`` (scheduled retry copies and their rule), ``records`` (received messages as
Records), ``subscription`` (receivers and settling), ``broker`` (the Broker).
"""

from __future__ import annotations

from tether.brokers.servicebus.broker import KEYLESS_SESSIONS, ServiceBusBroker
from tether.brokers.servicebus.clients import (
    Admin,
    AzureServiceBusClients,
    Receiver,
    Sender,
    ServiceBusClients,
)
from tether.brokers.servicebus.records import record_from
from tether.brokers.servicebus.retries import (
    DEFAULT_RULE_NAME,
    DELIVERIES_PROPERTY,
    RETRY_GROUP_PROPERTY,
    RETRY_TOPIC_PROPERTY,
    RULE_NAME,
    retry_filter,
)
from tether.brokers.servicebus.settings import (
    DEFAULT_CONNECTION_STRING_ENV,
    ServiceBusSettings,
    connection_string_endpoint,
    parse_url,
)
from tether.brokers.servicebus.subscription import (
    ACCEPT_WAIT,
    RECEIVE_BATCH,
    RETRY_PAUSE,
    ServiceBusSubscription,
)


def from_url(url: str) -> ServiceBusBroker:
    """``servicebus://[NAMESPACE.servicebus.windows.net][?connection_string_env=VAR&...]``;
    the connection string comes from the environment (see :func:`parse_url`)."""
    parsed = parse_url(url)
    clients = AzureServiceBusClients(parsed.connection_string, parsed.settings.lock_renewal)
    return ServiceBusBroker(clients, parsed.url, parsed.settings)


__all__ = [
    "ACCEPT_WAIT",
    "DEFAULT_CONNECTION_STRING_ENV",
    "DEFAULT_RULE_NAME",
    "DELIVERIES_PROPERTY",
    "KEYLESS_SESSIONS",
    "RECEIVE_BATCH",
    "RETRY_GROUP_PROPERTY",
    "RETRY_PAUSE",
    "RETRY_TOPIC_PROPERTY",
    "RULE_NAME",
    "Admin",
    "AzureServiceBusClients",
    "Receiver",
    "Sender",
    "ServiceBusBroker",
    "ServiceBusClients",
    "ServiceBusSettings",
    "ServiceBusSubscription",
    "connection_string_endpoint",
    "from_url",
    "record_from",
    "retry_filter",
]
