"""Kafka protocol binding, binary content mode (CloudEvents Kafka binding 1.0).

Attributes travel as ``ce_``-prefixed UTF-8 headers, the content type as ``content-type``,
data as the record value (``None`` when the event has no data, a tombstone-like record), and
the record key is the ``partitionkey`` extension, which is how Kafka keeps per-key order.
"""

from __future__ import annotations

from collections.abc import Sequence

from tether.platform.events.binary import decode_pairs, encode_headers
from tether.platform.events.event import CloudEvent, InvalidCloudEventError

PREFIX = "ce_"
CONTENT_TYPE_HEADER = "content-type"

KafkaHeaders = list[tuple[str, bytes]]


def to_kafka(event: CloudEvent) -> tuple[bytes | None, bytes | None, KafkaHeaders]:
    """``(key, value, headers)`` for a producer ``send``."""
    headers = [(name, value.encode()) for name, value in encode_headers(event, PREFIX).items()]
    if event.datacontenttype is not None:
        headers.append((CONTENT_TYPE_HEADER, event.datacontenttype.encode()))
    key = event.partitionkey
    return (key.encode() if key is not None else None), event.data_bytes(), headers


def from_kafka(value: bytes | None, headers: Sequence[tuple[str, bytes]]) -> CloudEvent:
    """Rebuild an event from a consumed record; raises InvalidCloudEventError on bad input."""
    try:
        pairs = [(name, raw.decode()) for name, raw in headers]
    except (UnicodeDecodeError, AttributeError) as exc:
        raise InvalidCloudEventError(f"a CloudEvent header is not UTF-8 text: {exc}") from exc
    if not value and not any(name.lower() == CONTENT_TYPE_HEADER for name, _ in pairs):
        value = None  # the SDK writes b"" for an event without data
    return decode_pairs(pairs, PREFIX, None, value, content_type_name=CONTENT_TYPE_HEADER)
