"""Binary content mode: attributes as prefixed string headers, data as the body.

Every transport binding (HTTP ``ce-``, Kafka ``ce_``, Redis Streams ``ce_``, AMQP/Service Bus
``cloudEvents_``) is this one mapping with a different prefix and a different home for the
content type, so it is written once here. This is the hot path of every publish and every
delivery; it is checked against the cloudevents SDK's output in tests/platform.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from tether.platform.events.event import (
    CloudEvent,
    InvalidCloudEventError,
    decode_data,
    format_time,
)

#: Attributes that travel as headers (datacontenttype travels as the content type).
_HEADER_ATTRIBUTES = ("id", "source", "specversion", "type", "subject", "time", "dataschema")
_HEADER_ATTRIBUTE_SET = frozenset(_HEADER_ATTRIBUTES)



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
    return decode_pairs(headers.items(), prefix, content_type, body)


def decode_pairs(
    pairs: Iterable[tuple[str, str]],
    prefix: str,
    content_type: str | None,
    body: bytes | None,
    content_type_name: str | None = None,
) -> CloudEvent:
    """:func:`decode_headers` over ``(name, value)`` pairs, for transports whose headers are
    a list (Kafka); ``content_type_name`` names an in-band content-type header."""
    attributes: dict[str, str] = {}
    extensions: dict[str, str] = {}
    table = _name_table(prefix)
    for name, value in pairs:
        # hot path: one lookup for the names producers (Tether included) write
        slot = table.get(name)
        if slot is None:
            slot = _classify(name, prefix, content_type_name)
            if slot is None:
                continue
        kind, attr = slot
        if kind is _ATTRIBUTE:
            attributes[attr] = value
        elif kind is _EXTENSION:
            extensions[attr] = value
        else:  # the content type, in band or as a datacontenttype header
            content_type = content_type or value
    try:
        specversion = attributes["specversion"]
        event_id = attributes["id"]
        source = attributes["source"]
        event_type = attributes["type"]
    except KeyError as missing:
        raise InvalidCloudEventError(f"missing required attribute {missing.args[0]!r}") from None
    return CloudEvent(
        specversion=specversion,
        id=event_id,
        source=source,
        type=event_type,
        subject=attributes.get("subject"),
        time=attributes.get("time"),
        dataschema=attributes.get("dataschema"),
        datacontenttype=content_type,
        data=decode_data(body, content_type),
        extensions=extensions,
    )


_ATTRIBUTE, _EXTENSION, _CONTENT_TYPE = "attribute", "extension", "content-type"
_Slot = tuple[str, str]
_tables: dict[str, dict[str, _Slot]] = {}


def _name_table(prefix: str) -> dict[str, _Slot]:
    """Exact header names (as Tether writes them) for one prefix, built once."""
    table = _tables.get(prefix)
    if table is None:
        table = {prefix + attr: (_ATTRIBUTE, attr) for attr in _HEADER_ATTRIBUTES}
        table[prefix + "datacontenttype"] = (_CONTENT_TYPE, "")
        for ext in ("partitionkey", "traceparent", "tracestate"):
            table[prefix + ext] = (_EXTENSION, ext)
        _tables[prefix] = table
    return table


def _classify(name: str, prefix: str, content_type_name: str | None) -> _Slot | None:
    """The slow path: any case, any extension; None for headers that are not the event's."""
    lowered = name.lower()
    if content_type_name is not None and lowered == content_type_name:
        return (_CONTENT_TYPE, "")
    lowered_prefix = prefix.lower()
    if not lowered.startswith(lowered_prefix):
        return None
    attr = lowered[len(lowered_prefix):]
    if attr in _HEADER_ATTRIBUTE_SET:
        return (_ATTRIBUTE, attr)
    if attr == "datacontenttype":
        return (_CONTENT_TYPE, "")
    return (_EXTENSION, attr)
