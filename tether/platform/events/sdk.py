"""Conversion between Tether's CloudEvent and the cloudevents SDK's (2.x, spec 1.0).

For code that already speaks the SDK (its bindings, its AMQP or RabbitMQ support) at an edge;
Tether's own hot paths use the wire maps beside this module instead (docs/cloudevents.md).

``from_sdk`` returns the canonical event: the SDK's JSON ``read_data`` turns any binary
payload that is valid UTF-8 into ``str`` and leaves unparsable JSON as ``str``; here the
content type decides, as everywhere in Tether (JSON types give JSON values, ``text/*`` gives
``str``, anything else ``bytes``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.exceptions import BaseCloudEventException
from cloudevents.core.v1.event import CloudEvent as SDKCloudEvent

from tether.platform.events.event import (
    CONTEXT_ATTRIBUTES,
    CloudEvent,
    InvalidCloudEventError,
    decode_data,
    is_json_content_type,
    is_text_content_type,
)


def to_sdk(event: CloudEvent) -> SDKCloudEvent:
    """The same event as the SDK's ``cloudevents.core.v1.event.CloudEvent``."""
    attributes: dict[str, Any] = event.attributes()
    if event.time is not None:
        attributes["time"] = event.time  # the SDK takes a datetime, not its text
    try:
        converted = SDKCloudEvent(attributes, event.data)
    except BaseCloudEventException as exc:
        raise InvalidCloudEventError(str(exc)) from exc
    if event.time is None:
        # the SDK stamps "now" on an event without time; keep the event as it was
        converted.get_attributes().pop("time", None)
    return converted


def from_sdk(sdk_event: BaseCloudEvent) -> CloudEvent:
    """Tether's canonical event from any SDK event; InvalidCloudEventError if it is not
    a valid CloudEvents 1.0 event."""
    attributes = sdk_event.get_attributes()
    content_type = attributes.get("datacontenttype")
    time = attributes.get("time")
    if time is not None and not isinstance(time, (datetime, str)):
        raise InvalidCloudEventError(f"attribute 'time' must be a timestamp, got {time!r}")
    extensions = {
        name: value for name, value in attributes.items() if name not in CONTEXT_ATTRIBUTES
    }
    return CloudEvent(
        specversion=attributes.get("specversion", ""),
        id=attributes.get("id") or "",
        source=attributes.get("source", ""),
        type=attributes.get("type", ""),
        subject=attributes.get("subject"),
        time=time,
        datacontenttype=content_type,
        dataschema=attributes.get("dataschema"),
        data=_canonical_data(sdk_event.get_data(), content_type),
        extensions=extensions,
    )


def _canonical_data(data: Any, content_type: str | None) -> Any:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return decode_data(bytes(data), content_type)
    if isinstance(data, str) and content_type is not None:
        if is_json_content_type(content_type) or is_text_content_type(content_type):
            return data
        return data.encode()  # the SDK decoded a binary payload that happened to be UTF-8
    return data
