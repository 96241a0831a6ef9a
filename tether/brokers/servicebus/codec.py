"""Azure Service Bus mapping: the CloudEvents AMQP binding, binary content mode.

=================================  =====================================================
ServiceBusMessage                  CloudEvent
=================================  =====================================================
``application_properties``         ``cloudEvents_<attr>`` for every context attribute but
                                   ``datacontenttype``, and every extension (strings)
``content_type``                   ``datacontenttype``
body (one AMQP data section)       the data bytes; an AMQP null value when there is no data
``session_id``                     ``partitionkey`` (or the caller's fallback for keyless
                                   events); keys longer than Service Bus allows are hashed
``message_id``                     ``id`` (lets Service Bus duplicate detection work)
=================================  =====================================================

Reading accepts what other AMQP producers may send under the binding: the ``cloudEvents:``
prefix, ``time`` as an AMQP timestamp, typed (int, bool, uuid) property values, and text in an
AMQP value body. Received property names and string values arrive as ``bytes`` from the SDK.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from azure.servicebus import ServiceBusMessage, ServiceBusReceivedMessage
from azure.servicebus.amqp import AmqpMessageBodyType

from tether.platform.events.binary import decode_headers, encode_headers
from tether.platform.events.event import (
    CloudEvent,
    InvalidCloudEventError,
    canonical_string,
    format_time,
)

PREFIX = "cloudEvents_"
#: the binding allows this prefix too; the underscore one is preferred (JMS-compatible)
COLON_PREFIX = "cloudEvents:"
#: Service Bus limits SessionId to 128 characters
MAX_SESSION_ID = 128


def session_id_for(key: str) -> str:
    """The session of a partition key: the key itself, or a stable digest when too long."""
    if len(key) <= MAX_SESSION_ID:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def to_servicebus(event: CloudEvent, *, session_id: str | None = None) -> ServiceBusMessage:
    """A message for ``sender.send_messages``; ``session_id`` is used for keyless events."""
    key = event.partitionkey
    properties: dict[str | bytes, Any] = {}
    properties.update(encode_headers(event, PREFIX))
    return ServiceBusMessage(
        event.data_bytes(),
        application_properties=properties,
        content_type=event.datacontenttype,
        session_id=session_id_for(key) if key is not None else session_id,
        message_id=event.id,
    )


def from_servicebus(message: ServiceBusReceivedMessage) -> CloudEvent:
    """Rebuild an event from a received message; raises InvalidCloudEventError."""
    headers: dict[str, str] = {}
    for raw_name, value in (message.application_properties or {}).items():
        name = _text(raw_name)
        if name[: len(COLON_PREFIX)].lower() == COLON_PREFIX.lower():
            name = PREFIX + name[len(COLON_PREFIX) :]
        elif name[: len(PREFIX)].lower() != PREFIX.lower():
            continue
        headers[name] = _attribute_text(name[len(PREFIX) :].lower(), value)
    return decode_headers(headers, PREFIX, message.content_type, body_bytes(message))


def body_bytes(message: ServiceBusReceivedMessage) -> bytes | None:
    """The message body as bytes: data sections joined, a text or binary value encoded,
    ``None`` for a null value. A sequence body is not CloudEvents data."""
    body_type = message.body_type
    body: Any = message.body
    if body_type == AmqpMessageBodyType.DATA:
        return b"".join(_as_bytes(section) for section in _sections(body))
    if body_type == AmqpMessageBodyType.VALUE:
        if body is None:
            return None
        if isinstance(body, (bytes, bytearray, memoryview)):
            return bytes(body)
        if isinstance(body, str):
            return body.encode()
    raise InvalidCloudEventError(f"message body is an AMQP {body_type} section, not data")


def _sections(body: Any) -> Iterable[Any]:
    return [body] if isinstance(body, (bytes, bytearray, memoryview)) else body


def _as_bytes(section: Any) -> bytes:
    if isinstance(section, (bytes, bytearray, memoryview)):
        return bytes(section)
    raise InvalidCloudEventError(f"AMQP data section of type {type(section).__name__}")


def _text(value: str | bytes) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError as exc:
        raise InvalidCloudEventError(f"an application property is not UTF-8 text: {exc}") from exc


def _attribute_text(attribute: str, value: Any) -> str:
    """The canonical string of a received property value (see the module docstring)."""
    if isinstance(value, (str, bytes)):
        return _text(value)
    if attribute == "time" and isinstance(value, int) and not isinstance(value, bool):
        # an AMQP timestamp: milliseconds since the epoch
        return format_time(datetime.fromtimestamp(value / 1000, tz=UTC))
    if isinstance(value, datetime):
        return format_time(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, uuid.UUID):
        return str(value)
    try:
        return canonical_string(value)
    except InvalidCloudEventError as exc:
        raise InvalidCloudEventError(f"attribute {attribute!r}: {exc}") from exc


def text_properties(message: ServiceBusReceivedMessage) -> Mapping[str, Any]:
    """Application properties with ``str`` names (values as received)."""
    return {
        (name.decode(errors="replace") if isinstance(name, bytes) else name): value
        for name, value in (message.application_properties or {}).items()
    }
