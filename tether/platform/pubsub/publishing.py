"""Dapr's publish and bulk publish for one app, whatever front end asked.

A call is checked and turned into CloudEvents completely before anything is published, so
bad input publishes nothing. The checks come in Dapr's order: the component and topic
(:meth:`Publisher.resolve`, before the body is read), the metadata and body, then the
component's topic scopes. The body becomes the event's data (or, under
``application/cloudevents+json``, is the caller's own event), wrapped in Dapr's envelope
(:mod:`tether.platform.events.envelope`); ``metadata`` may override envelope attributes
(``cloudevent.<name>``), set ``ttlInSeconds`` and ``partitionKey``, publish the body as it
is (``rawPayload``) or delay it (``deliverAfter`` / ``deliverAt``: the event then goes to
the schedule topic, :mod:`tether.platform.pubsub.scheduled`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from time import perf_counter
from typing import Any

from tether.brokers import Broker, BrokerError
from tether.platform import errors, metrics, tracing
from tether.platform.components.metadata import is_truthy
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent, InvalidCloudEventError
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
from tether.platform.events.ids import new_id, new_ids, now_text
from tether.platform.events.json_format import CONTENT_TYPE as CLOUDEVENTS_JSON
from tether.platform.events.json_format import event_from_attributes, from_object
from tether.platform.json_body import JsonBodyError, read_json
from tether.platform.pubsub.bulk import UNPARSED, BulkEntry
from tether.platform.pubsub.delivery_time import DeliveryTimeError, due_time
from tether.platform.pubsub.registry import PubSubRegistry, PubSubSpec
from tether.platform.pubsub.scheduled import publish_at
from tether.platform.resiliency import Resiliency, ResiliencyError

DEFAULT_CONTENT_TYPE = "text/plain"
RAW_PAYLOAD = "rawPayload"
CLOUDEVENT_PREFIX = "cloudevent."
#: envelope attributes a ``metadata.cloudevent.<name>`` parameter may set
OVERRIDABLE = (
    "id", "source", "type", "subject", "dataschema", "time", "traceid", "traceparent",
    "tracestate",
)


def is_raw(metadata: Mapping[str, str]) -> bool:
    """Whether ``metadata`` asks to publish the body as it is (``rawPayload``)."""
    return is_truthy(metadata.get(RAW_PAYLOAD))


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
        # the caller's mistake, so a 400 where Dapr answers 500
        raise ApiError(
            400, errors.PUBSUB_CLOUD_EVENTS_SER, f"cannot create cloudevent: {exc}"
        ) from exc


def delivery_due(metadata: Mapping[str, str]) -> datetime | None:
    """When a delayed publish (``metadata.deliverAfter`` / ``deliverAt``) is due; None
    for an ordinary one. Bad values are Dapr's metadata error (400)."""
    try:
        return due_time(metadata)
    except DeliveryTimeError as exc:
        raise _metadata_error(exc) from exc


def _callers_event(body: bytes, parsed: Any = UNPARSED) -> dict[str, Any]:
    if parsed is UNPARSED:
        try:
            callers: dict[str, Any] = read_json(
                body, dict, what="an application/cloudevents+json body")
        except JsonBodyError as exc:
            raise InvalidCloudEventError(str(exc)) from exc
        return callers
    if not isinstance(parsed, dict):
        raise InvalidCloudEventError("an application/cloudevents+json body must be an object")
    return parsed


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
    event_id = event_id or new_id()
    if raw:
        defaults = required_attributes(app_id, event_id)
    else:
        defaults = envelope(
            app_id, event_id, topic=topic, pubsub=pubsub,
            time=time or now_text(), trace=trace,
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
    """JSON stays JSON, text stays text and anything else is kept as bytes. A JSON body
    that is not JSON (or not I-JSON: NaN, a lone surrogate, too deep) goes out as its text,
    as Dapr publishes it; a JSON or text body that is not UTF-8 could not reach subscribers
    as its content type says, so it is refused."""
    if not body:
        return None
    if is_json_content_type(content_type):
        try:
            return read_json(body)
        except JsonBodyError:
            pass
    elif not is_text_content_type(content_type):
        return body
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise InvalidCloudEventError(
            f"the body is not UTF-8 text, as its Content-Type {content_type!r} says"
        ) from None


@dataclass(frozen=True, slots=True)
class Target:
    """The component and topic one call publishes to, already checked."""

    spec: PubSubSpec
    topic: str


@dataclass(frozen=True, slots=True)
class BulkFailure:
    """A bulk publish the broker refused: it takes a batch whole or not at all, so every
    entry failed, for the same ``error``."""

    entry_ids: list[str]
    error: ApiError


class Publisher:
    """Publishes for ``app_id`` through the brokers of ``registry``, each call under its
    component's outbound resiliency policy."""

    def __init__(
        self, registry: PubSubRegistry, app_id: str, resiliency: Resiliency | None = None
    ) -> None:
        self.registry = registry
        self.app_id = app_id
        self.resiliency = resiliency or Resiliency()

    def resolve(self, pubsub: str, topic: str) -> Target:
        """The checks Dapr makes before it reads the body, in its order."""
        if not self.registry.names:
            raise ApiError(400, errors.PUBSUB_NOT_CONFIGURED, "pubsub is not configured")
        if not pubsub:
            raise ApiError(404, errors.PUBSUB_EMPTY, "pubsub name is empty")
        spec = self.registry.spec(pubsub)
        if spec is None:
            raise ApiError(404, errors.PUBSUB_NOT_FOUND, f"pubsub {pubsub} not found")
        if not topic:
            raise ApiError(404, errors.TOPIC_EMPTY, f"topic is empty in pubsub {pubsub}")
        return Target(spec, topic)

    async def publish(
        self,
        target: Target,
        body: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        trace: Mapping[str, str],
    ) -> None:
        """Publish ``body`` as one event (``content_type`` None: ``text/plain``); ``trace``
        holds the call's ``traceparent`` / ``tracestate``."""
        tracer = tracing.tracer(self.app_id)
        if tracer is not None:  # the event then carries the publish span's context
            with tracer.span(f"publish {target.topic}", tracing.PRODUCER, trace,
                             _attributes(target)) as span:
                await self._publish_one(target, body, content_type, metadata, span.headers())
            return
        await self._publish_one(target, body, content_type, metadata, trace)

    async def _publish_one(
        self,
        target: Target,
        body: bytes,
        content_type: str | None,
        metadata: Mapping[str, str],
        trace: Mapping[str, str],
    ) -> None:
        due = delivery_due(metadata)
        event = build_event(
            body,
            content_type,
            app_id=self.app_id,
            topic=target.topic,
            pubsub=target.spec.name,
            metadata=metadata,
            trace=trace,
        )
        self._check_allowed(target)
        await self._publish(target, [event], [due])

    async def publish_bulk(
        self,
        target: Target,
        entries: Sequence[BulkEntry],
        metadata: Mapping[str, str],
        trace: Mapping[str, str],
    ) -> BulkFailure | None:
        """Publish every entry (``metadata`` is shared, an entry's own wins) or none; None
        when all were published."""
        tracer = tracing.tracer(self.app_id)
        if tracer is not None:  # one span for the call: every event carries its context
            with tracer.span(f"publish {target.topic}", tracing.PRODUCER, trace,
                             _attributes(target)) as span:
                span.set("messaging.batch.message_count", len(entries))
                failure = await self._publish_bulk(target, entries, metadata, span.headers())
                if failure is not None:
                    span.fail(failure.error.message)
                return failure
        return await self._publish_bulk(target, entries, metadata, trace)

    async def _publish_bulk(
        self,
        target: Target,
        entries: Sequence[BulkEntry],
        metadata: Mapping[str, str],
        trace: Mapping[str, str],
    ) -> BulkFailure | None:
        # the call's metadata is checked even when no entry uses it (or there are none)
        shared_due = delivery_due(metadata)
        try:
            metadata_extensions(metadata)
        except EnvelopeMetadataError as exc:
            raise _metadata_error(exc) from exc
        # entries without metadata of their own (the usual case) share the call's
        merged = [{**metadata, **entry.metadata} if entry.metadata else metadata
                  for entry in entries]
        due = [delivery_due(m) if m is not metadata else shared_due for m in merged]
        time = now_text()  # one time for the call, as one id pool
        events = [
            build_event(
                # bytes only where the parsed value cannot stand in for them
                entry.body if entry.parsed is UNPARSED or is_raw(m) else b"",
                entry.content_type,
                app_id=self.app_id,
                topic=target.topic,
                pubsub=target.spec.name,
                metadata=m,
                trace=trace,
                event_id=event_id,
                time=time,
                parsed=entry.parsed,
            )
            for entry, m, event_id in zip(entries, merged, new_ids(len(entries)), strict=True)
        ]
        self._check_allowed(target)
        if not events:
            return None
        try:
            await self._publish(target, events, due)
        except ApiError as exc:
            return BulkFailure([entry.entry_id for entry in entries], exc)
        return None

    def _check_allowed(self, target: Target) -> None:
        if not target.spec.topic_scopes.can_publish(self.app_id, target.topic):
            raise ApiError(
                403,
                errors.PUBSUB_FORBIDDEN,
                f"topic {target.topic} is not allowed for app id {self.app_id}",
            )

    async def _publish(
        self, target: Target, events: list[CloudEvent], due: list[datetime | None]
    ) -> None:
        """Publish (delayed ones to the schedule topic); a broker failure, after the
        policy's retries, becomes Dapr's 500 ERR_PUBSUB_PUBLISH_MESSAGE."""
        broker: Broker

        async def publish() -> None:
            if any(d is not None for d in due):
                await publish_at(broker, target.topic, events, due)
            elif len(events) == 1:
                await broker.publish(target.topic, events[0])
            else:
                await broker.publish_batch(target.topic, events)

        policy = self.resiliency.component_outbound(target.spec.name, "pubsub")
        start = perf_counter()
        try:
            broker = await self.registry.broker(target.spec.name)
            await policy.call(publish, permanent=_permanent)
        except (BrokerError, OSError, ResiliencyError) as exc:
            self._egress(target, len(events), "false", perf_counter() - start)
            raise ApiError(
                500,
                errors.PUBSUB_PUBLISH_MESSAGE,
                f"error when publishing to topic {target.topic} in pubsub "
                f"{target.spec.name}: {exc}",
            ) from exc
        self._egress(target, len(events), "true", perf_counter() - start)

    def _egress(self, target: Target, count: int, success: str, seconds: float) -> None:
        """dapr_component_pubsub_egress_*: the count per event, the latency per call."""
        metrics.EGRESS.record((self.app_id, target.spec.name, target.topic, success), seconds,
                              count)


def _attributes(target: Target) -> dict[str, str]:
    """A publish span's attributes (OpenTelemetry's messaging conventions)."""
    return {"messaging.system": target.spec.type, "messaging.operation.type": "send",
            "messaging.destination.name": target.topic, "dapr.pubsub": target.spec.name}


def _permanent(exc: BaseException) -> bool:
    """Only a broker's or the network's failure is worth another try."""
    return not isinstance(exc, BrokerError | OSError | TimeoutError)
