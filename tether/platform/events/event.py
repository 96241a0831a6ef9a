"""The one CloudEvent type Tether uses everywhere (CloudEvents 1.0).

A small slotted class instead of the SDK's event: it is built once per API call and per
delivery, so construction cost matters (see docs/cloudevents.md for the measurements).
Conversions to the SDK and to wire formats live beside this module.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from tether.platform.errors import TetherError
from tether.platform.events.ids import new_id

SPEC_VERSION = "1.0"

#: Attributes defined by the spec; everything else is an extension.
REQUIRED_ATTRIBUTES = ("id", "source", "specversion", "type")
OPTIONAL_ATTRIBUTES = ("datacontenttype", "dataschema", "subject", "time")
CONTEXT_ATTRIBUTES = REQUIRED_ATTRIBUTES + OPTIONAL_ATTRIBUTES

#: Extensions Tether knows by name (distributed tracing and partitioning extensions).
KNOWN_EXTENSIONS = ("traceparent", "tracestate", "partitionkey")

JSON_CONTENT_TYPE = "application/json"
TEXT_CONTENT_TYPE = "text/plain"
BINARY_CONTENT_TYPE = "application/octet-stream"

# one encoder instead of json.dumps(...) per call: same output, ~40% less time per event
_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)

# Spec: extension names are lower-case ASCII letters or digits, at most 20 characters
# recommended; we enforce the character set and allow longer names (Dapr emits some).
_EXTENSION_NAME = re.compile(r"^[a-z0-9]+$")

ExtensionValue = str


class InvalidCloudEventError(TetherError, ValueError):
    """An event (or bytes claiming to be one) that does not satisfy CloudEvents 1.0."""


class CloudEvent:
    """One CloudEvent.

    ``data`` holds the payload in its decoded form: ``bytes`` for binary content, ``str`` for
    text, and any JSON value for JSON content types (``application/json`` or ``*+json``).
    Extension values are strings: binary-mode transports (Kafka headers, HTTP headers,
    Redis fields) carry them as strings, so integer and boolean extensions are converted to
    their canonical string form on construction and every backend returns the same event.
    """

    __slots__ = (
        "data",
        "datacontenttype",
        "dataschema",
        "extensions",
        "id",
        "source",
        "specversion",
        "subject",
        "time",
        "type",
    )

    def __init__(
        self,
        *,
        type: str,
        source: str,
        data: Any = None,
        id: str | None = None,
        specversion: str = SPEC_VERSION,
        subject: str | None = None,
        time: datetime | str | None = None,
        datacontenttype: str | None = None,
        dataschema: str | None = None,
        extensions: dict[str, Any] | None = None,
    ) -> None:
        if specversion != SPEC_VERSION:
            raise InvalidCloudEventError(
                f"unsupported specversion {specversion!r}: Tether speaks CloudEvents {SPEC_VERSION}"
            )
        _require_text("type", type)
        _require_text("source", source)
        self.id = new_id() if id is None else _require_text("id", id)
        self.type = type
        self.source = source
        self.specversion = specversion
        self.subject = _optional_text("subject", subject)
        if time is not None and not isinstance(time, (str, datetime)):
            raise InvalidCloudEventError("time must be an RFC 3339 string or a datetime")
        self.time = parse_time(time) if isinstance(time, str) else time
        if self.time is not None and self.time.tzinfo is None:
            raise InvalidCloudEventError("time must carry a UTC offset (RFC 3339)")
        self.dataschema = _optional_text("dataschema", dataschema)
        self.datacontenttype = (
            _optional_text("datacontenttype", datacontenttype) or _default_content_type(data)
        )
        self.data = data
        self.extensions = _check_extensions(extensions) if extensions else {}

    # --- the three extensions the platform uses -------------------------------------------
    @property
    def partitionkey(self) -> str | None:
        return self.extensions.get("partitionkey")

    @property
    def traceparent(self) -> str | None:
        return self.extensions.get("traceparent")

    @property
    def tracestate(self) -> str | None:
        return self.extensions.get("tracestate")

    # --- helpers ---------------------------------------------------------------------------
    def data_bytes(self) -> bytes | None:
        """The payload as it travels on the wire (``None`` when the event has no data)."""
        return encode_data(self.data, self.datacontenttype)

    def attributes(self) -> dict[str, Any]:
        """Context attributes and extensions (no data), omitting unset optional ones."""
        attrs: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
        }
        if self.subject is not None:
            attrs["subject"] = self.subject
        if self.time is not None:
            attrs["time"] = format_time(self.time)
        if self.datacontenttype is not None:
            attrs["datacontenttype"] = self.datacontenttype
        if self.dataschema is not None:
            attrs["dataschema"] = self.dataschema
        attrs.update(self.extensions)
        return attrs

    def replace(self, **changes: Any) -> CloudEvent:
        """A copy with ``changes`` (any of the constructor's arguments) applied and checked
        as the constructor checks them; the original is left alone."""
        fields: dict[str, Any] = {
            "id": self.id,
            "type": self.type,
            "source": self.source,
            "subject": self.subject,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
            "dataschema": self.dataschema,
            "data": self.data,
            "extensions": self.extensions,
        }
        fields.update(changes)
        return CloudEvent(**fields)

    def with_extensions(self, **extensions: Any) -> CloudEvent:
        """A copy with extra (or replaced) extensions; the original is left alone."""
        return self.replace(extensions={**self.extensions, **extensions})

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CloudEvent):
            return NotImplemented
        return self.attributes() == other.attributes() and self.data == other.data

    def __hash__(self) -> int:
        return hash((self.id, self.source))

    def __repr__(self) -> str:
        return (
            f"CloudEvent(id={self.id!r}, type={self.type!r}, source={self.source!r}, "
            f"subject={self.subject!r}, datacontenttype={self.datacontenttype!r}, "
            f"extensions={self.extensions!r}, data={self.data!r})"
        )


# --- data encoding ---------------------------------------------------------------------------
def is_json_content_type(content_type: str | None) -> bool:
    if content_type is None:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON_CONTENT_TYPE or media.endswith("+json") or media == "text/json"


def is_text_content_type(content_type: str | None) -> bool:
    return content_type is not None and content_type.lower().startswith("text/")


def encode_data(data: Any, content_type: str | None) -> bytes | None:
    """Serialize decoded data for the wire, by content type (see the class docstring)."""
    if data is None:
        return None
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    if is_json_content_type(content_type):
        return _JSON_ENCODER.encode(data).encode()
    if isinstance(data, str):
        return data.encode()
    raise InvalidCloudEventError(
        f"data of type {type(data).__name__} needs a JSON datacontenttype, got {content_type!r}"
    )


def decode_data(raw: bytes | None, content_type: str | None) -> Any:
    """Inverse of :func:`encode_data`: JSON content is parsed, text decoded, the rest kept.
    An empty body with a JSON content type means no data (the SDK writes events so)."""
    if raw is None or (not raw and is_json_content_type(content_type)):
        return None
    if is_json_content_type(content_type):
        try:
            # decoding first skips json's encoding detection: ~0.5 us per event
            return json.loads(raw.decode())
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            raise InvalidCloudEventError(f"data is not valid JSON: {exc}") from exc
    if is_text_content_type(content_type):
        try:
            return raw.decode()
        except UnicodeDecodeError as exc:
            raise InvalidCloudEventError(f"text data is not valid UTF-8: {exc}") from exc
    return raw


def _default_content_type(data: Any) -> str | None:
    if data is None:
        return None
    if isinstance(data, (bytes, bytearray, memoryview)):
        return BINARY_CONTENT_TYPE
    if isinstance(data, str):
        return TEXT_CONTENT_TYPE
    return JSON_CONTENT_TYPE


# --- attribute checks ------------------------------------------------------------------------
def _require_text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidCloudEventError(f"attribute {name!r} is required: a non-empty string")
    return value


def _optional_text(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidCloudEventError(f"attribute {name!r}, when set, must be a non-empty string")
    return value


def _check_extensions(extensions: dict[str, Any]) -> dict[str, ExtensionValue]:
    checked: dict[str, ExtensionValue] = {}
    for name, value in extensions.items():
        if name in CONTEXT_ATTRIBUTES or name == "data":
            raise InvalidCloudEventError(f"{name!r} is a context attribute, not an extension")
        if name not in _CHECKED_NAMES and not _check_name(name):
            raise InvalidCloudEventError(
                f"extension name {name!r} must be lower-case ASCII letters and digits"
            )
        if value is None:
            continue
        checked[name] = value if type(value) is str else canonical_string(value)
    return checked


# extension names repeat on every event (partitionkey, traceparent...): check each once
_CHECKED_NAMES: set[str] = set()


def _check_name(name: str) -> bool:
    if not _EXTENSION_NAME.match(name):
        return False
    if len(_CHECKED_NAMES) < 10_000:  # bounded: names come from the wire
        _CHECKED_NAMES.add(name)
    return True


def canonical_string(value: Any) -> str:
    """The CloudEvents canonical string form of an attribute value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, str)):
        return str(value)
    if isinstance(value, datetime):
        return format_time(value)
    raise InvalidCloudEventError(f"unsupported extension value type {type(value).__name__}")


def parse_time(value: str) -> datetime:
    """Parse an RFC 3339 timestamp; a bad one is an invalid event."""
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidCloudEventError(f"time {value!r} is not an RFC 3339 timestamp") from exc
    if parsed.tzinfo is None:
        raise InvalidCloudEventError(f"time {value!r} has no UTC offset (RFC 3339 requires one)")
    return parsed


def format_time(value: datetime) -> str:
    """RFC 3339 with a ``Z`` for UTC, as the SDKs write it."""
    text = value.isoformat()
    if text.endswith("+00:00"):
        text = text[:-6] + "Z"
    return text


def utc_now() -> datetime:
    return datetime.now(UTC)
