"""Dapr's publish and bulk publish for one app, whatever front end asked.

A call is checked and turned into CloudEvents completely before anything is published, so
bad input publishes nothing. The checks come in Dapr's order: the component and topic
(:meth:`Publisher.resolve`, before the body is read), the metadata and body, then the
component's topic scopes. Delayed events go to the schedule topic
(:mod:`tether.platform.pubsub.scheduled`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from tether.brokers import Broker, BrokerError
from tether.platform import errors
from tether.platform.errors import ApiError
from tether.platform.events import CloudEvent, format_time, utc_now
from tether.platform.pubsub.bulk import BulkEntry, new_ids
from tether.platform.pubsub.publish_event import UNPARSED, build_event, delivery_due, is_raw
from tether.platform.pubsub.registry import PubSubRegistry, PubSubSpec
from tether.platform.pubsub.scheduled import publish_at


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
    """Publishes for ``app_id`` through the brokers of ``registry``."""

    def __init__(self, registry: PubSubRegistry, app_id: str) -> None:
        self.registry = registry
        self.app_id = app_id

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
        # entries without metadata of their own (the usual case) share the call's
        merged = [{**metadata, **entry.metadata} if entry.metadata else metadata
                  for entry in entries]
        shared_due = delivery_due(metadata) if any(m is metadata for m in merged) else None
        due = [delivery_due(m) if m is not metadata else shared_due for m in merged]
        time = format_time(utc_now())  # one time for the call, as one id pool
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
        """Publish (delayed ones to the schedule topic); a broker failure becomes Dapr's
        500 ERR_PUBSUB_PUBLISH_MESSAGE."""
        try:
            broker: Broker = await self.registry.broker(target.spec.name)
            if any(d is not None for d in due):
                await publish_at(broker, target.topic, events, due)
            elif len(events) == 1:
                await broker.publish(target.topic, events[0])
            else:
                await broker.publish_batch(target.topic, events)
        except (BrokerError, OSError) as exc:
            raise ApiError(
                500,
                errors.PUBSUB_PUBLISH_MESSAGE,
                f"error when publishing to topic {target.topic} in pubsub "
                f"{target.spec.name}: {exc}",
            ) from exc
