"""Redis Streams mapping (no official binding exists; this one is Tether's).

A stream entry is a flat field/value map, so an event is stored in binary mode, like Kafka:

=================  =========================================================
field              content
=================  =========================================================
``ce_<attr>``      every context attribute but ``datacontenttype``, and every
                   extension (``ce_partitionkey``, ``ce_traceparent``, ...)
``content-type``   ``datacontenttype``, when set
``data``           the data bytes; absent when the event has no data
=================  =========================================================

Field names and values are bytes on the wire; names are ASCII.
"""

from __future__ import annotations

from collections.abc import Mapping

from tether.platform.events.binary import decode_headers, encode_headers
from tether.platform.events.event import CloudEvent, InvalidCloudEventError

PREFIX = "ce_"
CONTENT_TYPE_FIELD = "content-type"
DATA_FIELD = "data"

RedisFields = dict[str | bytes, bytes | str]


def to_redis_fields(event: CloudEvent) -> RedisFields:
    fields: RedisFields = {name: value for name, value in encode_headers(event, PREFIX).items()}
    if event.datacontenttype is not None:
        fields[CONTENT_TYPE_FIELD] = event.datacontenttype
    data = event.data_bytes()
    if data is not None:
        fields[DATA_FIELD] = data
    return fields


def from_redis_fields(fields: Mapping[bytes, bytes]) -> CloudEvent:
    """Rebuild an event from an XREADGROUP entry; raises InvalidCloudEventError."""
    data = fields.get(DATA_FIELD.encode())
    try:
        text = {
            name.decode(): value.decode()
            for name, value in fields.items()
            if name != b"data"
        }
    except (UnicodeDecodeError, AttributeError) as exc:
        raise InvalidCloudEventError(f"a CloudEvent field is not UTF-8 text: {exc}") from exc
    content_type = text.pop(CONTENT_TYPE_FIELD, None)
    return decode_headers(text, PREFIX, content_type, data)
