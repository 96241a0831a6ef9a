"""The CloudEvent one publish call stands for, and when it is due, as Dapr makes them.

The body becomes the event's data (or, under ``application/cloudevents+json``, is the
caller's own event), wrapped in Dapr's envelope (:mod:`tether.platform.events.envelope`);
``metadata`` may override envelope attributes (``cloudevent.<name>``), set ``ttlInSeconds``
and ``partitionKey``, publish the body as it is (``rawPayload``) or delay it
(``deliverAfter`` / ``deliverAt``). Bad input raises ApiError with Dapr's codes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from tether.platform import errors
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent, InvalidCloudEventError, format_time, utc_now
from tether.platform.events.envelope import (
    EnvelopeMetadataError,
    envelope,
    metadata_extensions,
    required_attributes,
)
from tether.platform.events.event import (
    BINARY_CONTENT_TYPE,
    is_json_content_type,
    is_text_content_type,
)
from tether.platform.events.json_format import CONTENT_TYPE as CLOUDEVENTS_JSON
from tether.platform.events.json_format import event_from_attributes, from_object
from tether.platform.pubsub.delivery_time import DeliveryTimeError, due_time

DEFAULT_CONTENT_TYPE = "text/plain"
RAW_PAYLOAD = "rawPayload"
CLOUDEVENT_PREFIX = "cloudevent."
#: envelope attributes a ``metadata.cloudevent.<name>`` parameter may set
OVERRIDABLE = (
    "id", "source", "type", "subject", "dataschema", "time", "traceid", "traceparent",
    "tracestate",
)
_TRUTHY = ("1", "true", "t", "y", "yes", "on")


def is_raw(metadata: Mapping[str, str]) -> bool:
    """Whether ``metadata`` asks to publish the body as it is (``rawPayload``)."""
    value = metadata.get(RAW_PAYLOAD)
    return value is not None and value.strip().lower() in _TRUTHY


class _Unparsed:
    """No parsed JSON value is at hand: read the body."""


UNPARSED = _Unparsed()


def build_event(
    body: bytes,
    content_type: str | None,
    *,
    app_id: str,
    topic: str,
    pubsub: str,
    metadata: Mapping[str, str],
    trace: Mapping[str, str],
    event_id: str | None = None,
    time: str | None = None,
    parsed: Any = UNPARSED,
) -> CloudEvent:
    """The CloudEvent one publish call stands for; raises ApiError on bad input.

    A bulk publish passes what it shares by all entries: the default ``event_id`` and
    ``time``, and ``parsed``, the entry's JSON value it already read (``body`` is then
    only read for a raw payload)."""
    content_type = content_type or DEFAULT_CONTENT_TYPE
    media = content_type.split(";", 1)[0].strip().lower()
    raw = is_raw(metadata)
    try:
        callers = media == CLOUDEVENTS_JSON and not raw
        # the caller's own event keeps its data members; from_object reads them
        attributes = _callers_event(body, parsed) if callers else {}
        _fill(attributes, app_id, topic, pubsub, trace, raw=raw, event_id=event_id, time=time)
        if metadata:
            _apply_metadata(attributes, metadata, raw=raw)
        if callers:
            return from_object(attributes)
        if raw:
            # the body travels as opaque bytes (as the broker message is in Dapr), so every
            # backend hands subscribers the same bytes back, whatever Content-Type said
            return event_from_attributes(attributes, body or None, BINARY_CONTENT_TYPE)
        if parsed is not UNPARSED and is_json_content_type(content_type):
            data = parsed  # what decoding its JSON bytes again would give
        else:
            data = _decode_body(body, content_type)
        return event_from_attributes(attributes, data, content_type)
    except InvalidCloudEventError as exc:
        raise ApiError(
            500, errors.PUBSUB_CLOUD_EVENTS_SER, f"cannot create cloudevent: {exc}"
        ) from exc


def delivery_due(metadata: Mapping[str, str]) -> datetime | None:
    """When a delayed publish (``metadata.deliverAfter`` / ``deliverAt``) is due; None
    for an ordinary one. Bad values are Dapr's metadata error (400)."""
    try:
        return due_time(metadata)
    except DeliveryTimeError as exc:
        raise _metadata_error(exc) from exc


def _callers_event(body: bytes, parsed: Any = UNPARSED) -> dict[str, Any]:
    if parsed is not UNPARSED:
        obj = parsed
    else:
        try:
            obj = json.loads(body)
        except ValueError as exc:
            raise InvalidCloudEventError(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise InvalidCloudEventError("an application/cloudevents+json body must be an object")
    return obj


def _fill(
    attributes: dict[str, Any],
    app_id: str,
    topic: str,
    pubsub: str,
    trace: Mapping[str, str],
    *,
    raw: bool,
    event_id: str | None = None,
    time: str | None = None,
) -> None:
    """Dapr's envelope for whatever the caller left out (a raw payload's is only the
    required attributes)."""
    event_id = event_id or str(uuid.uuid4())
    if raw:
        defaults = required_attributes(app_id, event_id)
    else:
        defaults = envelope(
            app_id, event_id, topic=topic, pubsub=pubsub,
            time=time or format_time(utc_now()), trace=trace,
        )
    for name, value in defaults.items():
        attributes.setdefault(name, value)


def _apply_metadata(attributes: dict[str, Any], metadata: Mapping[str, str], *, raw: bool) -> None:
    for name, value in metadata.items():
        if name.startswith(CLOUDEVENT_PREFIX) and not raw:
            attribute = name[len(CLOUDEVENT_PREFIX):].lower()
            if attribute in OVERRIDABLE:
                attributes[attribute] = value
    try:
        attributes.update(metadata_extensions(metadata))
    except EnvelopeMetadataError as exc:
        raise _metadata_error(exc) from exc


def _metadata_error(exc: ValueError) -> ApiError:
    return ApiError(
        400, errors.PUBSUB_REQUEST_METADATA, f"failed deserializing metadata: {exc}"
    )


def _decode_body(body: bytes, content_type: str) -> Any:
    """JSON stays JSON and text stays text; anything else (or a body that is not what its
    content type says) is kept as bytes, so it reaches subscribers unchanged."""
    if not body:
        return None
    if is_json_content_type(content_type):
        try:
            return json.loads(body)
        except ValueError:
            return body
    if is_text_content_type(content_type):
        try:
            return body.decode()
        except UnicodeDecodeError:
            return body
    return body
