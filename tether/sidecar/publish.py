"""``POST /v1.0/publish/{pubsub}/{topic}`` and its bulk form, as Dapr answers them.

A request is checked and turned into CloudEvents completely before anything is published,
so bad input publishes nothing. The envelope follows Dapr's (docs/http-api.md): source is
the app id, type ``com.dapr.event.sent``, plus the ``topic``, ``pubsubname`` and trace
extensions; ``metadata.*`` query parameters override or extend it.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from tether.brokers import Broker, BrokerError
from tether.platform import errors
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent, InvalidCloudEventError, format_time, utc_now
from tether.platform.events.event import (
    BINARY_CONTENT_TYPE,
    is_json_content_type,
    is_text_content_type,
)
from tether.platform.events.json_format import CONTENT_TYPE as CLOUDEVENTS_JSON
from tether.platform.events.json_format import event_from_attributes, from_object
from tether.platform.pubsub import PubSubRegistry, PubSubSpec
from tether.platform.pubsub.delivery_time import DeliveryTimeError, due_time
from tether.platform.pubsub.scheduled import publish_at
from tether.sidecar.request import request_metadata, trace_headers

DAPR_EVENT_TYPE = "com.dapr.event.sent"
DEFAULT_CONTENT_TYPE = "text/plain"
CLOUDEVENT_PREFIX = "cloudevent."
#: envelope attributes a ``metadata.cloudevent.<name>`` parameter may set
OVERRIDABLE = (
    "id", "source", "type", "subject", "dataschema", "time", "traceid", "traceparent",
    "tracestate",
)
_TRUTHY = ("1", "true", "t", "y", "yes", "on")


@dataclass(frozen=True, slots=True)
class Target:
    """The component and topic one request publishes to, already checked."""

    spec: PubSubSpec
    topic: str


def resolve(registry: PubSubRegistry, pubsub: str, topic: str) -> Target:
    """The checks Dapr makes before it reads the body, in its order."""
    if not registry.names:
        raise ApiError(400, errors.PUBSUB_NOT_CONFIGURED, "pubsub is not configured")
    if not pubsub:
        raise ApiError(404, errors.PUBSUB_EMPTY, "pubsub name is empty")
    spec = registry.spec(pubsub)
    if spec is None:
        raise ApiError(404, errors.PUBSUB_NOT_FOUND, f"pubsub {pubsub} not found")
    if not topic:
        raise ApiError(404, errors.TOPIC_EMPTY, f"topic is empty in pubsub {pubsub}")
    return Target(spec, topic)


def check_allowed(target: Target, app_id: str) -> None:
    if not target.spec.topic_scopes.can_publish(app_id, target.topic):
        raise ApiError(
            403,
            errors.PUBSUB_FORBIDDEN,
            f"topic {target.topic} is not allowed for app id {app_id}",
        )


def is_truthy(value: str | None) -> bool:
    return value is not None and value.strip().lower() in _TRUTHY


class _Unparsed:
    """No parsed JSON value is at hand: read the body."""


UNPARSED = _Unparsed()


def new_ids(count: int) -> Iterator[str]:
    """``count`` random (version 4) UUIDs from one ``os.urandom`` call: a bulk request
    needs one per entry, and ``uuid.uuid4()`` each was a tenth of its CPU."""
    pool = bytearray(os.urandom(16 * count))
    for start in range(0, 16 * count, 16):
        pool[start + 6] = pool[start + 6] & 0x0F | 0x40  # version 4
        pool[start + 8] = pool[start + 8] & 0x3F | 0x80  # RFC 4122 variant
        h = pool[start:start + 16].hex()
        yield f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def build_event(
    body: bytes,
    content_type: str | None,
    *,
    app_id: str,
    target: Target,
    metadata: Mapping[str, str],
    trace: Mapping[str, str],
    event_id: str | None = None,
    time: str | None = None,
    parsed: Any = UNPARSED,
) -> CloudEvent:
    """The CloudEvent one publish request stands for; raises ApiError on bad input.

    A bulk request passes what it shares by all entries: the default ``event_id`` and
    ``time``, and ``parsed``, the entry's JSON value it already read (``body`` is then
    only read for a raw payload)."""
    content_type = content_type or DEFAULT_CONTENT_TYPE
    media = content_type.split(";", 1)[0].strip().lower()
    raw = is_truthy(metadata.get("rawPayload"))
    try:
        callers = media == CLOUDEVENTS_JSON and not raw
        # the caller's own event keeps its data members; from_object reads them
        attributes = _callers_event(body, parsed) if callers else {}
        _fill(attributes, app_id, target, trace, raw=raw, event_id=event_id, time=time)
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
    target: Target,
    trace: Mapping[str, str],
    *,
    raw: bool,
    event_id: str | None = None,
    time: str | None = None,
) -> None:
    """Dapr's defaults for whatever the caller left out."""
    defaults: dict[str, Any] = {
        "specversion": "1.0",
        "id": event_id or str(uuid.uuid4()),
        "source": app_id,
        "type": DAPR_EVENT_TYPE,
    }
    if not raw:
        defaults.update(
            time=time or format_time(utc_now()), topic=target.topic, pubsubname=target.spec.name
        )
        if "traceparent" in trace:
            defaults["traceid"] = trace["traceparent"]
        defaults.update(trace)
    for name, value in defaults.items():
        attributes.setdefault(name, value)


def _apply_metadata(attributes: dict[str, Any], metadata: Mapping[str, str], *, raw: bool) -> None:
    for name, value in metadata.items():
        if name.startswith(CLOUDEVENT_PREFIX) and not raw:
            attribute = name[len(CLOUDEVENT_PREFIX):].lower()
            if attribute in OVERRIDABLE:
                attributes[attribute] = value
    ttl = metadata.get("ttlInSeconds")
    if ttl is not None:
        try:
            seconds = int(ttl)
        except ValueError:
            seconds = -1
        if seconds < 0:
            raise ApiError(
                400,
                errors.PUBSUB_REQUEST_METADATA,
                f"failed deserializing metadata: ttlInSeconds {ttl!r} is not a whole number "
                "of seconds",
            )
        attributes["expiration"] = format_time(utc_now() + timedelta(seconds=seconds))
    key = metadata.get("partitionKey")
    if key:
        attributes["partitionkey"] = key


def delivery_due(metadata: Mapping[str, str]) -> datetime | None:
    """When a delayed publish (``metadata.deliverAfter`` / ``deliverAt``) is due; None
    for an ordinary one. Bad values are Dapr's metadata error (400)."""
    try:
        return due_time(metadata)
    except DeliveryTimeError as exc:
        raise ApiError(
            400, errors.PUBSUB_REQUEST_METADATA, f"failed deserializing metadata: {exc}"
        ) from exc


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


async def publish_to(
    registry: PubSubRegistry,
    target: Target,
    events: list[CloudEvent],
    due: list[datetime | None] | None = None,
) -> None:
    """Publish (delayed ones to the schedule topic, see tether/platform/pubsub/scheduled.py); a
    broker failure becomes Dapr's 500 ERR_PUBSUB_PUBLISH_MESSAGE."""
    try:
        broker: Broker = await registry.broker(target.spec.name)
        if due is not None and any(d is not None for d in due):
            await publish_at(broker, target.topic, events, due)
        elif len(events) == 1:
            await broker.publish(target.topic, events[0])
        else:
            await broker.publish_batch(target.topic, events)
    except (BrokerError, OSError) as exc:
        raise ApiError(
            500,
            errors.PUBSUB_PUBLISH_MESSAGE,
            f"error when publishing to topic {target.topic} in pubsub {target.spec.name}: {exc}",
        ) from exc


@dataclass(frozen=True, slots=True)
class BulkEntry:
    entry_id: str
    #: the entry's ``event`` member as parsed from the request
    event: Any
    content_type: str
    metadata: Mapping[str, str]

    @property
    def body(self) -> bytes:
        """The event as the body of a single publish would carry it."""
        return _event_bytes(self.event, self.content_type)

    @property
    def parsed(self) -> Any:
        """The JSON value a JSON content type's body decodes to, already at hand."""
        return self.event if is_json_content_type(self.content_type) else UNPARSED


def parse_bulk(body: bytes) -> list[BulkEntry]:
    """Dapr's bulk body: ``[{entryId, event, contentType, metadata?}]``; entry ids are
    required and unique (Dapr answers 400 ERR_PUBSUB_EVENTS_SER otherwise)."""
    try:
        items = json.loads(body)
    except ValueError as exc:
        raise _bulk_error(f"the body is not valid JSON: {exc}") from exc
    if not isinstance(items, list):
        raise _bulk_error("the body must be a JSON array of entries")
    entries: list[BulkEntry] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise _bulk_error(f"entry {index} is not an object")
        entry_id = item.get("entryId")
        if not isinstance(entry_id, str) or not entry_id or entry_id in seen:
            raise _bulk_error(f"entry {index}: entryId is duplicated or not present")
        seen.add(entry_id)
        content_type = item.get("contentType")
        if not isinstance(content_type, str) or not content_type:
            raise _bulk_error(f"entry {entry_id}: contentType is required")
        metadata = item.get("metadata") or {}
        if not isinstance(metadata, dict) or not all(
            isinstance(v, str) for v in metadata.values()
        ):
            raise _bulk_error(f"entry {entry_id}: metadata must map names to strings")
        if "event" not in item:
            raise _bulk_error(f"entry {entry_id}: event is required")
        entries.append(BulkEntry(entry_id, item["event"], content_type, metadata))
    return entries


def _event_bytes(event: Any, content_type: str) -> bytes:
    # a JSON content type carries the event as a JSON value; otherwise a string is the body
    if isinstance(event, str) and not is_json_content_type(content_type):
        return event.encode()
    return json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()


def _bulk_error(problem: str) -> ApiError:
    message = f"error when unmarshaling the request: {problem}"
    return ApiError(400, errors.PUBSUB_EVENTS_SER, message)


class PublishApi:
    """The publish handlers of one sidecar."""

    def __init__(self, registry: PubSubRegistry, app_id: str) -> None:
        self.registry = registry
        self.app_id = app_id

    async def publish(self, request: web.Request) -> web.StreamResponse:
        target = resolve(self.registry, request.match_info["pubsub"], request.match_info["topic"])
        body = await request.read()
        metadata = request_metadata(request)
        due = delivery_due(metadata)
        event = build_event(
            body,
            request.headers.get("Content-Type"),
            app_id=self.app_id,
            target=target,
            metadata=metadata,
            trace=trace_headers(request),
        )
        check_allowed(target, self.app_id)
        await publish_to(self.registry, target, [event], [due])
        return web.Response(status=204)

    async def publish_bulk(self, request: web.Request) -> web.StreamResponse:
        target = resolve(self.registry, request.match_info["pubsub"], request.match_info["topic"])
        entries = parse_bulk(await request.read())
        shared = request_metadata(request)
        trace = trace_headers(request)
        # entries without metadata of their own (the usual case) share the request's
        metadata = [{**shared, **entry.metadata} if entry.metadata else shared
                    for entry in entries]
        shared_due = delivery_due(shared) if any(m is shared for m in metadata) else None
        due = [delivery_due(m) if m is not shared else shared_due for m in metadata]
        time = format_time(utc_now())  # one time for the request, as one id pool
        events = [
            build_event(
                # bytes only where the parsed value cannot stand in for them
                entry.body if entry.parsed is UNPARSED or is_truthy(m.get("rawPayload"))
                else b"",
                entry.content_type,
                app_id=self.app_id,
                target=target,
                metadata=m,
                trace=trace,
                event_id=event_id,
                time=time,
                parsed=entry.parsed,
            )
            for entry, m, event_id in zip(entries, metadata, new_ids(len(entries)), strict=True)
        ]
        check_allowed(target, self.app_id)
        if not events:
            return web.Response(status=204)
        try:
            await publish_to(self.registry, target, events, due)
        except ApiError as exc:
            # a broker batch is accepted whole or not at all: every entry failed
            failed = [{"entryId": e.entry_id, "error": exc.message} for e in entries]
            return web.json_response(
                {"failedEntries": failed, "errorCode": exc.code}, status=exc.status
            )
        return web.Response(status=204)
