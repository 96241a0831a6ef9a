"""The CloudEvents JSON event format (structured mode) and its batch format.

``application/cloudevents+json`` carries one event as a JSON object;
``application/cloudevents-batch+json`` carries a JSON array of them. Data is written by its
type, as the JSON format spec asks:

* ``bytes`` -> ``data_base64`` (standard Base64);
* a JSON ``datacontenttype`` (``application/json``, ``*+json``) -> ``data`` as a JSON value;
* ``str`` under any other content type -> ``data`` as a JSON string.

Reading gives Tether's canonical event (see docs/cloudevents.md): JSON content types give the
decoded JSON value, ``text/*`` gives ``str``, anything else gives ``bytes``, whichever member
carried it. Every malformed input raises :class:`InvalidCloudEventError`.

The attribute checks here are shared with the Avro format, whose attribute map has the same
shape as a JSON event object.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Mapping
from typing import Any

from tether.platform.events.event import (
    CONTEXT_ATTRIBUTES,
    JSON_CONTENT_TYPE,
    SPEC_VERSION,
    CloudEvent,
    InvalidCloudEventError,
    decode_data,
    is_json_content_type,
    is_text_content_type,
)

CONTENT_TYPE = "application/cloudevents+json"
BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"

_REQUIRED = ("id", "source", "type")
_OPTIONAL_TEXT = ("subject", "datacontenttype", "dataschema")
_DATA_MEMBERS = ("data", "data_base64")


# --- writing ----------------------------------------------------------------------------------
def to_json(event: CloudEvent) -> bytes:
    """One event as ``application/cloudevents+json`` bytes (UTF-8)."""
    return _dumps(event_object(event))


def to_json_batch(events: Iterable[CloudEvent]) -> bytes:
    """Events as an ``application/cloudevents-batch+json`` array (UTF-8)."""
    return _dumps([event_object(event) for event in events])


def event_object(event: CloudEvent) -> dict[str, Any]:
    """The JSON object of one event, before serialization."""
    obj = event.attributes()
    data = event.data
    if data is None:
        return obj
    if isinstance(data, (bytes, bytearray, memoryview)):
        obj["data_base64"] = base64.b64encode(data).decode("ascii")
    elif is_json_content_type(event.datacontenttype) or isinstance(data, str):
        obj["data"] = data
    else:
        raise InvalidCloudEventError(
            f"data of type {type(data).__name__} needs a JSON datacontenttype, "
            f"got {event.datacontenttype!r}"
        )
    return obj


def _dumps(value: Any) -> bytes:
    try:
        # allow_nan=False: NaN and Infinity are not JSON, a strict reader would reject them
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidCloudEventError(f"event data is not JSON-serializable: {exc}") from exc
    return text.encode()


# --- reading ----------------------------------------------------------------------------------
def from_json(payload: bytes | bytearray | memoryview | str) -> CloudEvent:
    """Parse one ``application/cloudevents+json`` event."""
    return from_object(_loads(payload))


def from_json_batch(payload: bytes | bytearray | memoryview | str) -> list[CloudEvent]:
    """Parse an ``application/cloudevents-batch+json`` array (possibly empty)."""
    items = _loads(payload)
    if not isinstance(items, list):
        raise InvalidCloudEventError(
            f"a CloudEvents JSON batch must be a JSON array, got {_json_kind(items)}"
        )
    events = []
    for index, item in enumerate(items):
        try:
            events.append(from_object(item))
        except InvalidCloudEventError as exc:
            raise InvalidCloudEventError(f"batch event {index}: {exc}") from exc
    return events


def from_object(obj: Any) -> CloudEvent:
    """An event from a parsed JSON object (``data`` / ``data_base64`` members included)."""
    if not isinstance(obj, dict):
        raise InvalidCloudEventError(
            f"a CloudEvent in JSON must be a JSON object, got {_json_kind(obj)}"
        )
    if "data" in obj and "data_base64" in obj:
        raise InvalidCloudEventError("an event cannot have both 'data' and 'data_base64'")
    content_type = obj.get("datacontenttype")
    if "data_base64" in obj:
        data, content_type = decode_base64_member(obj["data_base64"], content_type)
    else:
        data, content_type = data_from_json_value(obj.get("data"), content_type)
    return event_from_attributes(obj, data, content_type, skip=_DATA_MEMBERS)


def decode_base64_member(value: Any, content_type: Any) -> tuple[Any, Any]:
    if value is None:
        return None, content_type
    if not isinstance(value, str):
        raise InvalidCloudEventError(
            f"'data_base64' must be a Base64 string, got {_json_kind(value)}"
        )
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidCloudEventError(f"'data_base64' is not valid Base64: {exc}") from exc
    return decode_data(raw, _text_or_none("datacontenttype", content_type)), content_type


def data_from_json_value(value: Any, content_type: Any) -> tuple[Any, Any]:
    """Canonical data from data that arrived as a JSON value (the JSON ``data`` member, or a
    non-``bytes`` branch of the Avro data union) and the content type to give the event.

    Without a ``datacontenttype`` the value is JSON (the format specs say so), so the event
    gets ``application/json``. A string under a non-JSON content type is the data's text:
    ``text/*`` keeps it, anything else becomes its UTF-8 bytes, as a binary-mode transport
    would have delivered it.
    """
    if value is None:
        return None, content_type
    content_type = _text_or_none("datacontenttype", content_type)
    if content_type is None:
        return value, JSON_CONTENT_TYPE
    if is_json_content_type(content_type):
        return value, content_type
    if isinstance(value, str):
        if is_text_content_type(content_type):
            return value, content_type
        try:
            return value.encode(), content_type
        except UnicodeEncodeError as exc:  # a lone surrogate from a JSON \\ud800 escape
            raise InvalidCloudEventError(f"data is not valid Unicode text: {exc}") from exc
    raise InvalidCloudEventError(
        f"data is a JSON {_json_kind(value)} but datacontenttype {content_type!r} is not JSON"
    )


def event_from_attributes(
    attributes: Mapping[str, Any],
    data: Any,
    content_type: str | None,
    skip: tuple[str, ...] = (),
) -> CloudEvent:
    """Check and build an event from a map of attribute values (JSON object, Avro attribute
    map). Extension values may be strings, integers or booleans; ``None`` means absent."""
    specversion = attributes.get("specversion")
    if specversion is None:
        raise InvalidCloudEventError("missing required attribute 'specversion'")
    if specversion != SPEC_VERSION:
        raise InvalidCloudEventError(
            f"unsupported specversion {specversion!r}: Tether speaks CloudEvents {SPEC_VERSION}"
        )
    for name in _REQUIRED:
        value = attributes.get(name)
        if value is None:
            raise InvalidCloudEventError(f"missing required attribute {name!r}")
        if not isinstance(value, str) or not value:
            raise InvalidCloudEventError(f"attribute {name!r} must be a non-empty string")
    for name in _OPTIONAL_TEXT:
        if _text_or_none(name, attributes.get(name)) == "":
            raise InvalidCloudEventError(f"attribute {name!r} must not be empty when present")
    time = attributes.get("time")
    if time is not None and not isinstance(time, str):
        raise InvalidCloudEventError(
            f"attribute 'time' must be an RFC 3339 string, got {_json_kind(time)}"
        )
    extensions: dict[str, Any] | None = None
    if len(attributes) > 4:  # only the required four: no extensions to look for
        for name, value in attributes.items():
            if name in CONTEXT_ATTRIBUTES or name in skip:
                continue
            if value is not None and not isinstance(value, (str, int)):
                raise InvalidCloudEventError(
                    f"extension {name!r} must be a string, integer or boolean, "
                    f"got {_json_kind(value)}"
                )
            if extensions is None:
                extensions = {}
            extensions[name] = value
    return CloudEvent(
        specversion=specversion,
        id=attributes["id"],
        source=attributes["source"],
        type=attributes["type"],
        subject=attributes.get("subject"),
        time=time,
        datacontenttype=content_type,
        dataschema=attributes.get("dataschema"),
        data=data,
        extensions=extensions,
    )


def _loads(payload: bytes | bytearray | memoryview | str) -> Any:
    if isinstance(payload, memoryview):
        payload = payload.tobytes()
    try:
        return json.loads(payload)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError
        raise InvalidCloudEventError(f"not valid JSON: {exc}") from exc


def _text_or_none(name: str, value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise InvalidCloudEventError(f"attribute {name!r} must be a string, got {_json_kind(value)}")


def _json_kind(value: Any) -> str:
    kinds = {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}
    kind = kinds.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, (int, float)):
        return "number"
    return type(value).__name__
