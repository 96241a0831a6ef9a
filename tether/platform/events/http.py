"""HTTP protocol binding (CloudEvents HTTP binding 1.0): binary, structured and batch modes.

Binary mode: every attribute but ``datacontenttype`` is a ``ce-<name>`` header, the content
type is ``Content-Type`` and the data is the body. Header values are percent-encoded as the
binding asks (spec section 3.1.3.2): space, ``"``, ``%`` and everything outside printable
ASCII -- non-ASCII text goes as its UTF-8 bytes, ``%C3%A9`` for ``é``. An empty body is an
event without data (HTTP cannot tell an empty payload from none).

Structured mode: the whole event in the body in an event format, ``Content-Type:
application/cloudevents+json`` (or ``+avro`` when receiving). Batch mode:
``application/cloudevents-batch+json``.

A receiver tells the modes apart by content type, as the binding recommends: the
``application/cloudevents`` media types are structured or batch, anything else is binary.
Header names are matched case-insensitively.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote

from tether.platform.events.avro_format import CONTENT_TYPE as AVRO_CONTENT_TYPE
from tether.platform.events.avro_format import from_avro
from tether.platform.events.binary import decode_headers, encode_headers
from tether.platform.events.event import CloudEvent, InvalidCloudEventError
from tether.platform.events.json_format import (
    BATCH_CONTENT_TYPE,
    from_json,
    from_json_batch,
    to_json,
    to_json_batch,
)
from tether.platform.events.json_format import CONTENT_TYPE as JSON_CONTENT_TYPE

PREFIX = "ce-"
CONTENT_TYPE_HEADER = "content-type"

Headers = dict[str, str]
IncomingHeaders = Mapping[str, str] | Iterable[tuple[str, str]]

# Printable ASCII but space, '"' and '%' may appear as is in a header value; the rest is
# percent-encoded as UTF-8.
_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '"%')
_NEEDS_QUOTING = re.compile(r'[^\x21-\x7e]|["%]')


# --- sending ----------------------------------------------------------------------------------
def to_http_binary(event: CloudEvent) -> tuple[Headers, bytes]:
    """``(headers, body)`` of a binary-mode request or response."""
    headers = encode_headers(event, PREFIX)
    # one scan over all values: most events have nothing to escape
    if _NEEDS_QUOTING.search("".join(headers.values())) is not None:
        headers = {name: _encode_value(value) for name, value in headers.items()}
    if event.datacontenttype is not None:
        headers[CONTENT_TYPE_HEADER] = event.datacontenttype
    body = event.data_bytes()
    return headers, body if body is not None else b""


def to_http_structured(event: CloudEvent) -> tuple[Headers, bytes]:
    """``(headers, body)`` of a structured-mode message in the JSON format."""
    return {CONTENT_TYPE_HEADER: JSON_CONTENT_TYPE}, to_json(event)


def to_http_batch(events: Iterable[CloudEvent]) -> tuple[Headers, bytes]:
    """``(headers, body)`` of a batch-mode message (a JSON array of events)."""
    return {CONTENT_TYPE_HEADER: BATCH_CONTENT_TYPE}, to_json_batch(events)


# --- receiving --------------------------------------------------------------------------------
def from_http(headers: IncomingHeaders, body: bytes) -> CloudEvent:
    """The event of a binary- or structured-mode message; raises InvalidCloudEventError,
    also for a batch (use :func:`from_http_batch`)."""
    lowered = _lower(headers)
    content_type = lowered.get(CONTENT_TYPE_HEADER)
    media = _media_type(content_type)
    if media.startswith("application/cloudevents"):
        if media == JSON_CONTENT_TYPE:
            return from_json(body)
        if media == AVRO_CONTENT_TYPE:
            return from_avro(body)
        if media == BATCH_CONTENT_TYPE:
            raise InvalidCloudEventError(
                "the message is a batch of CloudEvents: read it with from_http_batch"
            )
        raise InvalidCloudEventError(f"unsupported CloudEvents format {content_type!r}")
    return _from_binary(lowered, content_type, body)


def from_http_batch(headers: IncomingHeaders, body: bytes) -> list[CloudEvent]:
    """The events of a batch-mode message, or the one event of any other mode."""
    lowered = _lower(headers)
    if _media_type(lowered.get(CONTENT_TYPE_HEADER)) == BATCH_CONTENT_TYPE:
        return from_json_batch(body)
    return [from_http(lowered, body)]


def is_cloudevent(headers: IncomingHeaders) -> bool:
    """Whether a message claims to be a CloudEvent in any mode (without parsing the body)."""
    lowered = _lower(headers)
    return (
        _media_type(lowered.get(CONTENT_TYPE_HEADER)).startswith("application/cloudevents")
        or PREFIX + "specversion" in lowered
    )


def _from_binary(lowered: Headers, content_type: str | None, body: bytes) -> CloudEvent:
    if PREFIX + "specversion" not in lowered:
        raise InvalidCloudEventError(
            f"not a CloudEvent: no ce-specversion header, and content type {content_type!r} "
            "is not a structured CloudEvents format"
        )
    attributes = {
        name: _decode_value(name, value)
        for name, value in lowered.items()
        if name.startswith(PREFIX)
    }
    return decode_headers(attributes, PREFIX, content_type, bytes(body) if body else None)


def _encode_value(value: str) -> str:
    if _NEEDS_QUOTING.search(value) is None:  # the common case: nothing to escape
        return value
    return quote(value, safe=_SAFE)


def _decode_value(name: str, value: str) -> str:
    if "%" not in value:
        return value
    try:
        return unquote(value, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidCloudEventError(
            f"header {name!r} percent-encodes bytes that are not UTF-8: {exc}"
        ) from exc


def _lower(headers: IncomingHeaders) -> Headers:
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return {name.lower(): value for name, value in pairs}


def _media_type(content_type: str | None) -> str:
    if content_type is None:
        return ""
    return content_type.split(";", 1)[0].strip().lower()
