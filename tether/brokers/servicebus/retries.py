"""Keyless retries as scheduled copies: the application properties a copy carries, and the
subscription rule that keeps each copy to the group that scheduled it
(docs/brokers-servicebus.md, Retries)."""

from __future__ import annotations

from azure.servicebus import ServiceBusMessage

from tether.brokers.servicebus.codec import to_servicebus
from tether.platform.events import CloudEvent

#: the rule Tether installs on the subscriptions it creates (see retry_filter)
RULE_NAME = "tether"
DEFAULT_RULE_NAME = "$Default"
#: application properties of a scheduled retry copy
RETRY_TOPIC_PROPERTY = "tether_retry_topic"
RETRY_GROUP_PROPERTY = "tether_retry_group"
#: deliveries an event had before this copy of it was scheduled
DELIVERIES_PROPERTY = "tether_deliveries"


def retry_filter(topic: str, group: str) -> str:
    """The SQL filter of group ``group`` on ``topic``: every message except the retry copies
    other groups of this topic scheduled for themselves. Messages forwarded here from another
    topic's dead-letter queue carry that topic's name, so they pass."""
    return (
        f"NOT EXISTS({RETRY_TOPIC_PROPERTY}) OR {RETRY_TOPIC_PROPERTY} <> '{topic}'"
        f" OR {RETRY_GROUP_PROPERTY} = '{group}'"
    )


def retry_copy(
    event: CloudEvent, session_id: str | None, topic: str, group: str, deliveries: int
) -> ServiceBusMessage:
    """The copy of ``event`` to schedule for group ``group`` on ``topic`` after ``deliveries``
    deliveries; its own message id, so duplicate detection does not drop it."""
    copy = to_servicebus(event, session_id=session_id)
    copy.message_id = f"{event.id}:retry:{deliveries}"
    copy.application_properties = {
        **(copy.application_properties or {}),
        RETRY_TOPIC_PROPERTY: topic,
        RETRY_GROUP_PROPERTY: group,
        DELIVERIES_PROPERTY: deliveries,
    }
    return copy
