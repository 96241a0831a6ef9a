"""Received messages as the shared engine's Records: the delivery count across retry copies,
undecodable messages, and the ``deadletter*`` extensions of dead-lettered messages."""

from __future__ import annotations

import contextlib
import json
import re
from typing import Any

from azure.servicebus import ServiceBusReceivedMessage

from tether.brokers.servicebus.codec import body_bytes, from_servicebus, text_properties
from tether.brokers.servicebus.retries import DELIVERIES_PROPERTY
from tether.brokers.subscription import MALFORMED_EVENT_TYPE, Record
from tether.platform.events import CloudEvent, InvalidCloudEventError, utc_now


def record_from(message: ServiceBusReceivedMessage) -> Record:
    """A Record for a received message. The delivery count adds the deliveries of earlier
    copies (scheduled retries) to Service Bus's own count, which starts at 0 on the wire."""
    properties = text_properties(message)
    prior = _int(properties.get(DELIVERIES_PROPERTY))
    count = prior + (message.delivery_count or 0) + 1
    position = message.sequence_number
    dead_lettered = message.dead_letter_reason is not None
    details = _dead_letter_details(message) if dead_lettered else {}
    try:
        event: CloudEvent = from_servicebus(message)
    except InvalidCloudEventError as exc:
        if not dead_lettered:
            return Record(0, position, None, None, count, raw=_raw(message), error=str(exc))
        # dead-lettered bytes, shown as Tether shows them
        event = _malformed_corpse(message, details)
    if dead_lettered:
        event = _with_dead_letter_info(event, message, details)
    return Record(0, position, event.partitionkey, event, count)


def _dead_letter_details(message: ServiceBusReceivedMessage) -> dict[str, Any]:
    """What Tether wrote into the error description, or what the source entity tells."""
    details: dict[str, Any] = {}
    with contextlib.suppress(ValueError, TypeError):
        parsed = json.loads(message.dead_letter_error_description or "")
        if isinstance(parsed, dict):
            details = parsed
    source = message.dead_letter_source or ""  # "<topic>/Subscriptions/<group>"
    pieces = re.split(r"/subscriptions/", source, maxsplit=1, flags=re.IGNORECASE)
    details.setdefault("topic", pieces[0] or None)
    details.setdefault("group", pieces[1].split("/")[0] if len(pieces) > 1 else None)
    return details


def _with_dead_letter_info(
    event: CloudEvent, message: ServiceBusReceivedMessage, details: dict[str, Any]
) -> CloudEvent:
    extensions: dict[str, Any] = {"deadletterreason": message.dead_letter_reason}
    if details.get("topic"):
        extensions["deadlettertopic"] = str(details["topic"])
    if isinstance(details.get("deliveries"), int):
        extensions["deadletterdeliveries"] = details["deliveries"]
    return event.with_extensions(**extensions)


def _malformed_corpse(message: ServiceBusReceivedMessage, details: dict[str, Any]) -> CloudEvent:
    return CloudEvent(
        type=MALFORMED_EVENT_TYPE,
        source=f"tether/broker/{details.get('group') or 'servicebus'}",
        time=message.enqueued_time_utc or utc_now(),
        data=_raw(message) or b"",
        datacontenttype="application/octet-stream",
    )


def _raw(message: ServiceBusReceivedMessage) -> bytes | None:
    try:
        return body_bytes(message)
    except InvalidCloudEventError:
        return str(message.body).encode()


def _int(value: Any) -> int:
    if isinstance(value, bytes):
        value = value.decode(errors="replace")
    try:
        return max(int(value), 0)
    except (TypeError, ValueError):
        return 0
