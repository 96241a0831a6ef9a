"""The CloudEvents Avro event format (``application/cloudevents+avro``), with fastavro.

One event is one schemaless Avro datum of the spec's ``io.cloudevents.CloudEvent`` record
(tether/schemas/cloudevent.avsc): an ``attribute`` map of context attributes and extensions,
and ``data``, a union of ``bytes``, ``null``, ``boolean``, a map, an array, ``double`` and
``string``.

Writing: every event has a ``datacontenttype`` when it has data (the type fills one in), so
the data is written as its content type encodes it, in ``bytes`` -- except ``text/*`` data,
which is written as ``string``. JSON data goes as its UTF-8 JSON bytes rather than through the
union's JSON-value branches: those have no integer (1 would come back as 1.0) and cannot hold an
array of numbers, so they could not carry every JSON value.

Reading accepts every branch of the union from any producer and gives Tether's canonical
event: ``bytes`` are decoded by content type like a binary-mode body (so binary payloads that
happen to be valid UTF-8 stay ``bytes``), the JSON-value branches give JSON values.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from tether.platform.events.event import (
    CloudEvent,
    InvalidCloudEventError,
    decode_data,
    is_json_content_type,
    is_text_content_type,
)
from tether.platform.events.json_format import data_from_json_value, event_from_attributes
from tether.schemas import CLOUDEVENT, load_schema

CONTENT_TYPE = "application/cloudevents+avro"

_SCHEMA = load_schema(CLOUDEVENT)


def to_avro(event: CloudEvent) -> bytes:
    """One event as a schemaless Avro datum of the CloudEvents schema."""
    data = event.data
    content_type = event.datacontenttype
    value: bytes | str | None
    if data is None:
        value = None
    elif (
        isinstance(data, str)
        and is_text_content_type(content_type)
        and not is_json_content_type(content_type)
    ):
        value = data
    else:
        value = event.data_bytes()
    buffer = io.BytesIO()
    schemaless_writer(buffer, _SCHEMA, {"attribute": event.attributes(), "data": value})
    return buffer.getvalue()


def from_avro(payload: bytes | bytearray | memoryview) -> CloudEvent:
    """Parse one schemaless Avro datum of the CloudEvents schema."""
    buffer = io.BytesIO(payload)
    try:
        # return_record_name: a CloudEventData record inside a union comes back as
        # (name, record), which tells it apart from a map that has a "value" key
        record: Any = schemaless_reader(buffer, _SCHEMA, None, return_record_name=True)
    except Exception as exc:  # fastavro raises EOFError, ValueError, IndexError... on garbage
        raise InvalidCloudEventError(f"not a CloudEvents Avro datum: {exc!r}") from exc
    if buffer.tell() != len(buffer.getbuffer()):
        raise InvalidCloudEventError(
            f"not a CloudEvents Avro datum: {len(buffer.getbuffer()) - buffer.tell()} "
            "bytes left after the record"
        )
    attributes = _attributes(record["attribute"])
    content_type = attributes.get("datacontenttype")
    raw = record["data"]
    if isinstance(raw, bytes):
        if not (content_type is None or isinstance(content_type, str)):
            raise InvalidCloudEventError("attribute 'datacontenttype' must be a string")
        data = decode_data(raw, content_type)
    else:
        data, content_type = data_from_json_value(_json_value(raw), content_type)
    return event_from_attributes(attributes, data, content_type)


def _attributes(values: Mapping[str, Any]) -> dict[str, Any]:
    """The attribute map with ``bytes`` values in their canonical string form (Base64)."""
    if not any(isinstance(value, bytes) for value in values.values()):
        return dict(values)
    return {
        name: base64.b64encode(value).decode("ascii") if isinstance(value, bytes) else value
        for name, value in values.items()
    }


def _json_value(value: Any) -> Any:
    """A JSON value from the data union's non-bytes branches."""
    if isinstance(value, dict):  # map of null | boolean | CloudEventData | double | string
        return {key: _map_value(item) for key, item in value.items()}
    if isinstance(value, list):  # array of CloudEventData
        return [_cloud_event_data(item) for item in value]
    return value  # null, boolean, double, string


def _map_value(value: Any) -> Any:
    if isinstance(value, tuple):  # (record name, CloudEventData)
        return _cloud_event_data(value[1])
    return value


def _cloud_event_data(record: Mapping[str, Any]) -> dict[str, Any]:
    """CloudEventData is a JSON object: a map of null | boolean | map | array | double |
    string, whose maps and arrays hold CloudEventData again."""
    obj: dict[str, Any] = {}
    for key, item in record["value"].items():
        if isinstance(item, dict):
            obj[key] = {name: _cloud_event_data(inner) for name, inner in item.items()}
        elif isinstance(item, list):
            obj[key] = [_cloud_event_data(inner) for inner in item]
        else:
            obj[key] = item
    return obj
