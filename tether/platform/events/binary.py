"""Binary content mode: attributes as prefixed string headers, data as the body.

Every transport binding (HTTP ``ce-``, Kafka ``ce_``, Redis Streams ``ce_``, AMQP/Service Bus
``cloudEvents_``) is this one mapping with a different prefix and a different home for the
content type, so it is written once here. This is the hot path of every publish and every
delivery; it is checked against the cloudevents SDK's output in tests/platform.
"""

from __future__ import annotations

from collections.abc import Mapping

from tether.platform.events.event import (
    CloudEvent,
    InvalidCloudEventError,
    decode_data,
    format_time,
)

#: Attributes that travel as headers (datacontenttype travels as the content type).
_HEADER_ATTRIBUTES = ("id", "source", "specversion", "type", "subject", "time", "dataschema")
_HEADER_ATTRIBUTE_SET = frozenset(_HEADER_ATTRIBUTES)
#: names already in canonical lower case, so the common case skips str.lower()
_KNOWN_NAMES = _HEADER_ATTRIBUTE_SET | {"datacontenttype", "partitionkey", "traceparent",
                                        "tracestate"}


def encode_headers(event: CloudEvent, prefix: str) -> dict[str, str]:
    """Prefixed string headers for every attribute except ``datacontenttype`` and data."""
    headers = {
        prefix + "specversion": event.specversion,
        prefix + "id": event.id,
        prefix + "source": event.source,
        prefix + "type": event.type,
    }
    if event.subject is not None:
        headers[prefix + "subject"] = event.subject
    if event.time is not None:
        headers[prefix + "time"] = format_time(event.time)
    if event.dataschema is not None:
        headers[prefix + "dataschema"] = event.dataschema
    for name, value in event.extensions.items():
        headers[prefix + name] = value
    return headers


def decode_headers(
    headers: Mapping[str, str],
    prefix: str,
    content_type: str | None,
    body: bytes | None,
) -> CloudEvent:
    """Rebuild an event from prefixed headers; anything missing or malformed raises
    :class:`InvalidCloudEventError`. Header names are matched case-insensitively."""
    attributes: dict[str, str] = {}
    extensions: dict[str, str] = {}
    plen = len(prefix)
    lowered_prefix = prefix.lower()
    for name, value in headers.items():
        # hot path: producers (Tether included) write lower-case names; fall back otherwise
        if not name.startswith(prefix):
            if name[:plen].lower() != lowered_prefix:
                continue
        attr = name[plen:]
        if attr not in _KNOWN_NAMES:
            attr = attr.lower()
        if attr in _HEADER_ATTRIBUTE_SET:
            attributes[attr] = value
        elif attr == "datacontenttype":  # some producers also send it as a header
            content_type = content_type or value
        else:
            extensions[attr] = value
    for required in ("specversion", "id", "source", "type"):
        if required not in attributes:
            raise InvalidCloudEventError(f"missing required attribute {required!r}")
    return CloudEvent(
        specversion=attributes["specversion"],
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        subject=attributes.get("subject"),
        time=attributes.get("time"),
        dataschema=attributes.get("dataschema"),
        datacontenttype=content_type,
        data=decode_data(body, content_type),
        extensions=extensions,
    )
